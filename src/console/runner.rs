//! The runner: owns the terminal (raw mode, alternate screen, mouse capture; restored on exit
//! and on panic) and merges keyboard/mouse input, a one-second tick and the incoming `Msg`
//! channel into `update`. Redraws only after a change, at most ~60 times a second; a key never
//! waits for I/O. With `ConsoleOptions::latency_report` set it times each key from being read
//! to the end of the frame that shows it (`latency`) and writes p50/p99/max on exit.

use std::io::{self, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crossterm::event::{DisableMouseCapture, EnableMouseCapture, Event, EventStream, KeyEventKind};
use crossterm::execute;
use crossterm::terminal::{
    Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::clock::{SharedClock, SystemClock};

use super::actions::{self, ActionContext, ConsoleAction};
use super::aggregate::Limits;
use super::app::{AppState, Effect, HeaderInfo, Msg, update};
use super::clipboard;
use super::latency::LatencyHistogram;
use super::theme::Theme;
use super::views;

/// Shortest time between two frames (~60 fps).
const FRAME: Duration = Duration::from_millis(16);
/// Messages applied between two looks at the keyboard, so input stays responsive under load.
const MAX_BATCH: usize = 4096;

/// How to run the console.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    pub theme: Theme,
    pub header: HeaderInfo,
    pub limits: Limits,
    pub clock: SharedClock,
    /// When the gate started (uptime); default: when the console starts.
    pub started_at: Option<DateTime<Utc>>,
    /// Where rotation actions (`r`, `n`, `R`, `x`) happen; `None`: the keys say they need a
    /// store. Ignored when `header.read_only`.
    pub actions: Option<ActionContext>,
    /// Quiet period of rotations started with `r` (default 1h; the demo uses seconds).
    pub rotation_quiet_period: chrono::Duration,
    /// Measure key-to-draw latency and write p50/p99/max to this file on exit (the commands set
    /// it from `BOTGATE_CONSOLE_LATENCY`).
    pub latency_report: Option<std::path::PathBuf>,
    /// Themes `:theme NAME` offers (default: the shipped ones; the commands add the config
    /// dir's with `theme::catalogue`).
    pub themes: Vec<super::theme::ThemeChoice>,
    /// The config dir `:save` writes to (the commands set `settings::config_dir`).
    pub config_dir: Option<std::path::PathBuf>,
    /// Filters saved there, read at start.
    pub saved_filters: super::settings::NamedFilters,
    /// The columns chosen per view, read at start.
    pub columns: super::settings::ColumnChoices,
    /// The key bindings (the commands read the config dir's `keys.toml`: `rebind::load`).
    pub keymap: super::keymap::Keymap,
}

impl ConsoleOptions {
    /// Defaults: wall clock, default limits, no listen addresses.
    pub fn new(theme: Theme) -> Self {
        Self {
            theme,
            header: HeaderInfo::default(),
            limits: Limits::default(),
            clock: std::sync::Arc::new(SystemClock),
            started_at: None,
            actions: None,
            rotation_quiet_period: crate::rotation::DEFAULT_QUIET_PERIOD,
            latency_report: None,
            themes: super::theme::catalogue(None),
            config_dir: None,
            saved_filters: Default::default(),
            columns: Default::default(),
            keymap: Default::default(),
        }
    }

    /// The initial state these options describe.
    pub fn initial_state(&self) -> AppState {
        let now = self.clock.now();
        let mut s = AppState::new(self.theme.clone(), self.header.clone(), self.limits, now);
        if let Some(t) = self.started_at {
            s.started_at = t;
        }
        s.actions_available = self.actions.is_some() && !self.header.read_only;
        s.themes = self.themes.clone();
        s.config_dir = self.config_dir.clone();
        s.saved_filters = self.saved_filters.clone();
        s.keymap = self.keymap.clone();
        s.columns = self.columns.clone();
        s
    }
}

/// The console could not run.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(
        "the console needs an interactive terminal (stdout is not a TTY); run it in a terminal, or use `botgate logs export` or `botgate demo --headless`"
    )]
    NotATerminal,
    #[error("terminal error: {0}")]
    Terminal(#[from] io::Error),
}

/// Run the console until the user quits or `Msg::Quit` arrives. When the channel closes the
/// console stays open (showing that the source ended) until the user quits.
pub async fn run(opts: ConsoleOptions, rx: mpsc::Receiver<Msg>) -> Result<(), ConsoleError> {
    use std::io::IsTerminal;
    if !io::stdout().is_terminal() {
        return Err(ConsoleError::NotATerminal);
    }
    let mut state = opts.initial_state();
    // Actions run on a worker task; its answers come back on their own channel.
    let (results_tx, results_rx) = mpsc::channel(64);
    let effects_done = results_tx.clone();
    let worker = match (&opts.actions, state.actions_available) {
        (Some(ctx), true) => {
            let (tx, rx) = mpsc::channel(64);
            let task = actions::spawn_worker(
                ctx.clone(),
                opts.rotation_quiet_period,
                opts.clock.clone(),
                rx,
                results_tx,
            );
            Some((tx, task))
        }
        _ => None,
    };
    let mut guard = TerminalGuard::enter()?;
    let size = guard.terminal.size()?;
    update(&mut state, Msg::Resize(size.width, size.height));
    let channels = Channels {
        rx,
        results: results_rx,
        actions: worker.as_ref().map(|(tx, _)| tx.clone()),
        effects_done,
    };
    let mut latency = Latency::default();
    let result = event_loop(
        &mut guard.terminal,
        &mut state,
        &opts.clock,
        channels,
        &mut latency,
    )
    .await;
    drop(guard);
    if let Some(path) = &opts.latency_report {
        // After the terminal is restored, so the line is readable.
        let text = format!(
            "{}\n{}\n",
            latency.key_to_draw.summary("key-to-draw"),
            latency.frame.summary("frame (draw + write)")
        );
        eprint!("{text}");
        std::fs::write(path, text)?;
    }
    if let Some((_, task)) = worker {
        // An action already in a blocking task finishes on its own; no new one starts.
        task.abort();
    }
    result
}

/// What the runner measures when asked (`ConsoleOptions::latency_report`).
#[derive(Debug, Default)]
struct Latency {
    /// From reading a key to the end of the frame that shows it.
    key_to_draw: LatencyHistogram,
    /// Every frame: building it and writing it to the terminal.
    frame: LatencyHistogram,
}

/// The event loop's inputs besides the terminal, and where actions go.
struct Channels {
    rx: mpsc::Receiver<Msg>,
    results: mpsc::Receiver<Msg>,
    actions: Option<mpsc::Sender<ConsoleAction>>,
    /// Where the outcome of a file an effect wrote is sent (it arrives on `results`).
    effects_done: mpsc::Sender<Msg>,
}

/// Hand the actions `update` queued to the worker (never waits: a full queue is reported).
fn dispatch(state: &mut AppState, actions: Option<&mpsc::Sender<ConsoleAction>>) {
    for action in std::mem::take(&mut state.pending_actions) {
        let sent = actions.is_some_and(|tx| tx.try_send(action).is_ok());
        if !sent {
            update(
                state,
                Msg::ActionResult(Err(
                    "the action was not started: the action worker is busy or gone".into(),
                )),
            );
        }
    }
}

/// Perform the effects `update` queued: clipboard text is written to the terminal at once (it
/// is part of the terminal's output, like a frame); a file is written on a blocking thread and
/// its outcome comes back as `Msg::EffectDone`, so the UI task never waits for a disk.
fn perform_effects(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    state: &mut AppState,
    done: &mpsc::Sender<Msg>,
) {
    for effect in std::mem::take(&mut state.effects) {
        match effect {
            Effect::Copy(text) => {
                let out = terminal.backend_mut();
                let written = out
                    .write_all(clipboard::osc52(&text).as_bytes())
                    .and_then(|()| out.flush());
                if let Err(e) = written {
                    update(state, Msg::EffectDone(Err(format!("could not copy: {e}"))));
                }
            }
            Effect::WriteFile {
                path,
                contents,
                done: said,
            } => {
                let tx = done.clone();
                tokio::task::spawn_blocking(move || {
                    let result = std::fs::write(&path, contents)
                        .map(|()| said)
                        .map_err(|e| format!("could not write {}: {e}", path.display()));
                    // The console may have quit meanwhile; then nobody needs the answer.
                    let _ = tx.blocking_send(Msg::EffectDone(result));
                });
            }
            Effect::WriteConfig {
                path,
                contents,
                done: said,
            } => {
                let tx = done.clone();
                tokio::task::spawn_blocking(move || {
                    let result = crate::atomic_file::write(&path, contents.as_bytes())
                        .map(|()| said)
                        .map_err(|e| format!("could not write {}: {e}", path.display()));
                    let _ = tx.blocking_send(Msg::EffectDone(result));
                });
            }
        }
    }
}

async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    state: &mut AppState,
    clock: &SharedClock,
    channels: Channels,
    latency: &mut Latency,
) -> Result<(), ConsoleError> {
    let Channels {
        mut rx,
        mut results,
        actions,
        effects_done,
    } = channels;
    let mut input = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    let mut source_open = true;
    // When the oldest key not yet shown on screen was read.
    let mut key_read_at: Option<Instant> = None;
    loop {
        if state.should_quit {
            return Ok(());
        }
        // A key is drawn at once; other changes wait for the frame interval (~60 fps), so a
        // flood of events cannot make the console redraw faster than that.
        if dirty && (key_read_at.is_some() || last_draw.elapsed() >= FRAME) {
            let began = Instant::now();
            terminal.draw(|f| views::draw(f, state))?;
            last_draw = Instant::now();
            dirty = false;
            latency.frame.record(last_draw - began);
            if let Some(at) = key_read_at.take() {
                latency.key_to_draw.record(last_draw - at);
            }
        }
        tokio::select! {
            // Input first: a key is handled before the next batch of events.
            biased;
            ev = input.next() => match ev {
                Some(Ok(ev)) => {
                    if let Some(msg) = from_terminal(ev) {
                        if matches!(msg, Msg::Key(_)) {
                            key_read_at.get_or_insert_with(Instant::now);
                        }
                        update(state, msg);
                        dispatch(state, actions.as_ref());
                        perform_effects(terminal, state, &effects_done);
                        dirty = true;
                    }
                }
                Some(Err(e)) => return Err(ConsoleError::Terminal(e)),
                None => return Ok(()),
            },
            _ = tick.tick() => {
                update(state, Msg::Tick(clock.now()));
                dirty = true;
            }
            msg = rx.recv(), if source_open => match msg {
                Some(msg) => {
                    update(state, msg);
                    for _ in 0..MAX_BATCH {
                        match rx.try_recv() {
                            Ok(msg) => update(state, msg),
                            Err(_) => break,
                        }
                    }
                    dirty = true;
                }
                None => {
                    source_open = false;
                    update(state, Msg::Notice("event source ended".into()));
                    dirty = true;
                }
            },
            Some(msg) = results.recv() => {
                update(state, msg);
                dirty = true;
            }
            _ = tokio::time::sleep_until(last_draw + FRAME), if dirty => {}
        }
    }
}

/// A terminal event as a message (key releases and focus/paste events are ignored).
fn from_terminal(ev: Event) -> Option<Msg> {
    match ev {
        Event::Key(k) if k.kind != KeyEventKind::Release => Some(Msg::Key(k)),
        Event::Mouse(m) => Some(Msg::Mouse(m)),
        Event::Resize(w, h) => Some(Msg::Resize(w, h)),
        _ => None,
    }
}

/// Whether the terminal is in console mode (so the panic hook restores it only then).
static ACTIVE: AtomicBool = AtomicBool::new(false);

struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    fn enter() -> io::Result<Self> {
        install_panic_hook();
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        // Clear with an escape sequence rather than `Terminal::clear`, which asks the terminal
        // for the cursor position and fails on terminals that do not answer.
        let setup = execute!(
            io::stdout(),
            EnterAlternateScreen,
            EnableMouseCapture,
            Clear(ClearType::All)
        )
        .and_then(|_| Terminal::new(CrosstermBackend::new(io::stdout())));
        match setup {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
        let _ = self.terminal.show_cursor();
    }
}

fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = execute!(io::stdout(), DisableMouseCapture, LeaveAlternateScreen);
        let _ = disable_raw_mode();
    }
}

fn install_panic_hook() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Leave the alternate screen first so the panic message is readable.
        restore();
        previous(info);
    }));
}
