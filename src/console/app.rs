//! The console's state and its one pure transition: `update(&mut AppState, Msg)`. Everything the
//! views draw lives in `AppState`; everything that changes it arrives as a `Msg` (events from the
//! bus or a tailed log, inventory snapshots, keys, mouse, ticks). No I/O happens here.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use crossterm::event::{KeyEvent, KeyModifiers, MouseEvent};

use crate::audit::{AccessEvent, EventKind};

use super::actions::ConsoleAction;
use super::aggregate::{Limits, Traffic};
use super::alerts::AlertBook;
use super::command::CommandLine;
use super::filter::Filter;
use super::keymap::{self, Action, Context};
use super::model::{AppRow, CertRow, RotationRow, TokenRow};
use super::rows;
use super::theme::{Theme, ThemeChoice};
use super::wizard::Prompt;

/// Everything that can change the console.
#[derive(Debug, Clone)]
pub enum Msg {
    /// An audit event (access, admin or alert) from the bus or a tailed log.
    Event(Arc<AccessEvent>),
    /// A fresh credential inventory (replaces the previous one).
    Inventory {
        tokens: Vec<TokenRow>,
        certs: Vec<CertRow>,
    },
    /// The policy file as the gate enforces it, and the error of the last failed reload if any.
    Policies {
        apps: Vec<AppRow>,
        reload_error: Option<String>,
    },
    /// Rotations in progress or done, newest first (replaces the previous list).
    Rotations(Vec<RotationRow>),
    /// The answer to a `ConsoleAction`: what was done, or why not (shown as a notice).
    ActionResult(Result<String, String>),
    Key(KeyEvent),
    Mouse(MouseEvent),
    /// The clock moved (sent every second): countdowns and rates follow it.
    Tick(DateTime<Utc>),
    /// The terminal is now this many columns and rows.
    Resize(u16, u16),
    /// The event source dropped this many events (the console fell behind the bus).
    Dropped(u64),
    /// A line of the tailed log could not be parsed.
    CorruptLine {
        line: u64,
        error: String,
    },
    /// Something the operator should know about the feed (shown in the header).
    Notice(String),
    /// Close the console.
    Quit,
}

/// The seven views, in key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewId {
    Traffic,
    Tokens,
    Certs,
    Alerts,
    Policies,
    Rotations,
    Log,
}

impl ViewId {
    pub const ALL: [ViewId; 7] = [
        ViewId::Traffic,
        ViewId::Tokens,
        ViewId::Certs,
        ViewId::Alerts,
        ViewId::Policies,
        ViewId::Rotations,
        ViewId::Log,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn title(self) -> &'static str {
        match self {
            ViewId::Traffic => "Traffic",
            ViewId::Tokens => "Tokens",
            ViewId::Certs => "Certs",
            ViewId::Alerts => "Alerts",
            ViewId::Policies => "Policies",
            ViewId::Rotations => "Rotations",
            ViewId::Log => "Log",
        }
    }

    /// Sort orders `s` cycles through; the first is the default.
    pub fn sort_orders(self) -> &'static [&'static str] {
        match self {
            ViewId::Traffic => &["req/min", "deny %", "last seen", "name"],
            ViewId::Tokens | ViewId::Certs => &["expiry", "name", "last seen"],
            ViewId::Alerts => &["newest", "severity"],
            ViewId::Policies => &["file order"],
            ViewId::Rotations => &["as listed"],
            ViewId::Log => &["newest"],
        }
    }

    fn offset(self, by: isize) -> ViewId {
        let i = (self.index() as isize + by).rem_euclid(Self::ALL.len() as isize);
        Self::ALL[i as usize]
    }
}

/// A window drawn over the current view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    Help {
        scroll: u16,
    },
    Details {
        title: String,
        lines: Vec<String>,
        scroll: u16,
    },
}

/// Health of the event feed, shown in the header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedStatus {
    /// Events the console never saw (bus lag).
    pub dropped: u64,
    /// Lines of a tailed log that could not be parsed.
    pub corrupt_lines: u64,
    pub last_corrupt: Option<String>,
    pub notice: Option<String>,
}

/// Fixed facts shown in the header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderInfo {
    /// Gate listen addresses, e.g. `http://127.0.0.1:8080`.
    pub listen: Vec<String>,
    /// Where events come from: `in-process bus`, `tail /var/lib/botgate/audit.jsonl`.
    pub source: String,
    pub read_only: bool,
}

/// The whole console state.
#[derive(Debug, Clone)]
pub struct AppState {
    pub theme: Theme,
    pub header: HeaderInfo,
    pub started_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub view: ViewId,
    pub traffic: Traffic,
    pub alerts: AlertBook,
    pub tokens: Vec<TokenRow>,
    pub certs: Vec<CertRow>,
    pub apps: Vec<AppRow>,
    pub reload_error: Option<String>,
    pub rotations: Vec<RotationRow>,
    /// The applied filter.
    pub filter: Filter,
    /// What is being typed after `/` (None when not typing).
    pub filter_input: Option<String>,
    /// Ring sequence numbers of the events matching a non-empty filter, oldest first.
    pub filtered: VecDeque<u64>,
    pub overlay: Option<Overlay>,
    /// Selected row per view (for the Log view: counted from the newest event).
    pub selected: [usize; 7],
    /// First row shown per view's table, as last drawn (the table scrolls only when the
    /// selection leaves the screen; see `views::widgets::window_offset`).
    pub scroll: [usize; 7],
    /// Sort order per view, an index into `ViewId::sort_orders`.
    pub sort: [usize; 7],
    pub feed: FeedStatus,
    /// A question in the footer (abort y/n, revoke typed name) that takes the keyboard.
    pub prompt: Option<Prompt>,
    /// The `:` command line while it is open.
    pub command: Option<CommandLine>,
    /// Commands run, oldest first (↑/↓ in the command line).
    pub command_history: Vec<String>,
    /// The outcome of the last command (`Err`: why it did not run), shown in the footer until
    /// the next key.
    pub message: Option<Result<String, String>>,
    /// Themes `:theme NAME` can switch to (see `theme::catalogue`).
    pub themes: Vec<ThemeChoice>,
    /// Actions `update` asked for and the runner has not handed to the worker yet.
    pub pending_actions: Vec<ConsoleAction>,
    /// Whether an action worker exists (the console has a store to change).
    pub actions_available: bool,
    /// The answer to the last action, shown in the wizard panel.
    pub last_action: Option<Result<String, String>>,
    /// Terminal size as last reported.
    pub size: (u16, u16),
    pub should_quit: bool,
}

impl AppState {
    /// A console that started at `now`.
    pub fn new(theme: Theme, header: HeaderInfo, limits: Limits, now: DateTime<Utc>) -> Self {
        Self {
            theme,
            header,
            started_at: now,
            now,
            view: ViewId::Traffic,
            traffic: Traffic::new(limits),
            alerts: AlertBook::default(),
            tokens: Vec::new(),
            certs: Vec::new(),
            apps: Vec::new(),
            reload_error: None,
            rotations: Vec::new(),
            filter: Filter::default(),
            filter_input: None,
            filtered: VecDeque::new(),
            overlay: None,
            selected: [0; 7],
            scroll: [0; 7],
            sort: [0; 7],
            feed: FeedStatus::default(),
            prompt: None,
            command: None,
            command_history: Vec::new(),
            message: None,
            themes: super::theme::catalogue(None),
            pending_actions: Vec::new(),
            actions_available: false,
            last_action: None,
            size: (80, 24),
            should_quit: false,
        }
    }

    /// Where the keyboard focus is.
    pub fn context(&self) -> Context {
        if self.overlay.is_some() {
            Context::Overlay
        } else if let Some(p) = &self.prompt {
            match p {
                Prompt::ConfirmAbort { .. } => Context::YesNo,
                Prompt::TypeName { .. } => Context::TextPrompt,
            }
        } else if self.command.is_some() {
            Context::CommandInput
        } else if self.filter_input.is_some() {
            Context::FilterInput
        } else {
            Context::Normal
        }
    }

    /// The sort order label of `view`.
    pub fn sort_label(&self, view: ViewId) -> &'static str {
        let orders = view.sort_orders();
        orders[self.sort[view.index()] % orders.len()]
    }

    /// Requests per second over the last five whole seconds.
    pub fn req_per_sec(&self) -> f64 {
        self.traffic.seconds.rate(self.now.timestamp() - 1, 5)
    }

    fn ingest(&mut self, ev: Arc<AccessEvent>) {
        match ev.event {
            EventKind::Alert => self.alerts.apply_alert_event(&ev),
            EventKind::Access | EventKind::Admin => {}
        }
        let seq = self.traffic.record(&ev);
        let visible_in_log = if self.filter.is_empty() {
            true
        } else if self.filter.matches_event(&ev) {
            self.filtered.push_back(seq);
            true
        } else {
            false
        };
        let first = self.traffic.ring.first_seq();
        while self.filtered.front().is_some_and(|&s| s < first) {
            self.filtered.pop_front();
        }
        // Keep the row the user is reading in the Log view under the cursor as new ones arrive.
        let log = ViewId::Log.index();
        if visible_in_log && self.selected[log] > 0 {
            self.selected[log] =
                (self.selected[log] + 1).min(rows::log_len(self).saturating_sub(1));
            if self.scroll[log] > 0 {
                self.scroll[log] += 1;
            }
        }
    }

    pub(super) fn set_filter(&mut self, text: &str) {
        let f = Filter::parse(text);
        if f == self.filter {
            return;
        }
        self.filter = f;
        self.filtered.clear();
        if !self.filter.is_empty() {
            let ring = &self.traffic.ring;
            for seq in ring.first_seq()..ring.first_seq() + ring.len() as u64 {
                if ring.get(seq).is_some_and(|e| self.filter.matches_event(e)) {
                    self.filtered.push_back(seq);
                }
            }
        }
        self.selected = [0; 7];
        self.scroll = [0; 7];
    }

    /// Show `view` (digit keys, Tab, a click on its tab, `:name`).
    pub(super) fn show_view(&mut self, view: ViewId) {
        self.view = view;
    }

    fn key(&mut self, key: KeyEvent) {
        let context = self.context();
        let action = keymap::action_for(&key, context);
        let typed = match key.code {
            crossterm::event::KeyCode::Char(c)
                if !key
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
            {
                Some(c)
            }
            _ => None,
        };
        self.message = None;
        if matches!(context, Context::YesNo | Context::TextPrompt) {
            self.prompt_key(action, typed);
            return;
        }
        if context == Context::CommandInput {
            self.command_key(action, typed);
            return;
        }
        if context == Context::FilterInput {
            match action {
                Some(Action::ApplyFilter) => self.filter_input = None,
                Some(Action::CancelFilter) => {
                    self.filter_input = None;
                    self.set_filter("");
                }
                Some(Action::DeleteChar) => {
                    let mut text = self.filter_input.take().unwrap_or_default();
                    text.pop();
                    self.set_filter(&text);
                    self.filter_input = Some(text);
                }
                _ => {
                    if let Some(c) = typed {
                        let mut text = self.filter_input.take().unwrap_or_default();
                        text.push(c);
                        self.set_filter(&text);
                        self.filter_input = Some(text);
                    }
                }
            }
            return;
        }
        let Some(action) = action else { return };
        if let Some(overlay) = &mut self.overlay {
            let scroll = match overlay {
                Overlay::Help { scroll } | Overlay::Details { scroll, .. } => scroll,
            };
            match action {
                Action::Back => self.overlay = None,
                Action::Down => *scroll = scroll.saturating_add(1),
                Action::Up => *scroll = scroll.saturating_sub(1),
                Action::Quit => self.should_quit = true,
                _ => {}
            }
            return;
        }
        self.perform(action, Some(&key));
    }

    /// Do what `action` means with a view showing (no overlay, no input open): the one
    /// implementation behind keys and `:` commands. `key` is the key pressed, if any (the digit
    /// of `SwitchView`).
    pub(super) fn perform(&mut self, action: Action, key: Option<&KeyEvent>) {
        match action {
            Action::Quit => self.should_quit = true,
            Action::ToggleHelp => self.overlay = Some(Overlay::Help { scroll: 0 }),
            Action::SwitchView => {
                if let Some(crossterm::event::KeyCode::Char(c)) = key.map(|k| k.code)
                    && let Some(d) = c.to_digit(10)
                    && let Some(v) = ViewId::ALL.get((d as usize).wrapping_sub(1))
                {
                    self.show_view(*v);
                }
            }
            Action::NextView => self.show_view(self.view.offset(1)),
            Action::PrevView => self.show_view(self.view.offset(-1)),
            Action::Down => self.move_selection(1),
            Action::Up => self.move_selection(-1),
            Action::PageDown => self.move_selection(self.page() as isize),
            Action::PageUp => self.move_selection(-(self.page() as isize)),
            Action::Top => self.selected[self.view.index()] = 0,
            Action::Bottom => self.move_selection(isize::MAX / 2),
            Action::StartFilter => self.filter_input = Some(self.filter.text().to_string()),
            Action::StartCommand => self.command = Some(CommandLine::default()),
            Action::CycleSort => {
                let i = self.view.index();
                self.sort[i] = (self.sort[i] + 1) % self.view.sort_orders().len();
                self.selected[i] = 0;
            }
            Action::Details => {
                if let Some((title, lines)) = rows::details(self) {
                    self.overlay = Some(Overlay::Details {
                        title,
                        lines,
                        scroll: 0,
                    });
                }
            }
            Action::Back => self.set_filter(""),
            Action::StartRotation
            | Action::NextStep
            | Action::RevokeNow
            | Action::AbortRotation => self.rotation_key(action),
            Action::ApplyFilter
            | Action::CancelFilter
            | Action::DeleteChar
            | Action::Confirm
            | Action::Cancel
            | Action::RunCommand
            | Action::Complete
            | Action::HistoryPrev
            | Action::HistoryNext => {}
        }
    }
}

/// The one state transition. Pure: no I/O, no clock reads, no awaits.
pub fn update(state: &mut AppState, msg: Msg) {
    match msg {
        Msg::Event(ev) => state.ingest(ev),
        Msg::Inventory { tokens, certs } => {
            state.tokens = tokens;
            state.certs = certs;
            state.clamp_selections();
        }
        Msg::Policies { apps, reload_error } => {
            state.apps = apps;
            state.reload_error = reload_error;
            state.clamp_selections();
        }
        Msg::Rotations(rows) => {
            state.rotations = rows;
            state.clamp_selections();
        }
        Msg::Key(k) => {
            state.key(k);
            state.remember_scroll();
        }
        Msg::Mouse(m) => {
            state.mouse(m);
            state.remember_scroll();
        }
        Msg::Tick(now) => {
            state.now = now;
        }
        Msg::Resize(w, h) => {
            state.size = (w, h);
            state.remember_scroll();
        }
        Msg::Dropped(n) => state.feed.dropped += n,
        Msg::CorruptLine { line, error } => {
            state.feed.corrupt_lines += 1;
            state.feed.last_corrupt = Some(format!("line {line}: {error}"));
        }
        Msg::Notice(text) => state.feed.notice = Some(text),
        Msg::ActionResult(result) => {
            state.feed.notice = Some(match &result {
                Ok(text) => text.clone(),
                Err(e) => e.clone(),
            });
            state.last_action = Some(result);
        }
        Msg::Quit => state.should_quit = true,
    }
}
