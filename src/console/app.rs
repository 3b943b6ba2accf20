//! The console's state and its one pure transition: `update(&mut AppState, Msg)`. Everything the
//! views draw lives in `AppState`; everything that changes it arrives as a `Msg` (events from the
//! bus or a tailed log, inventory snapshots, keys, mouse, ticks). No I/O happens here.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use crossterm::event::{KeyEvent, KeyModifiers, MouseEvent};

use crate::audit::{AccessEvent, EventKind};

use super::actions::ConsoleAction;
use super::aggregate::{Identities, Limits, Traffic};
use super::alerts::AlertBook;
use super::clipboard::{self, Copyable};
use super::command::CommandLine;
use super::filter::Filter;
use super::history::{self, Walk};
use super::keymap::{Action, Context, Keymap};
use super::model::{AppRow, CertRow, IssuerRow, KeyChangeRow, RotationRow, TokenRow};
use super::rows;
use super::settings::{ColumnChoices, NamedFilters};
use super::theme::{Theme, ThemeChoice};
use super::window::TimeSelection;
use super::wizard::Prompt;

/// Everything that can change the console.
#[derive(Debug, Clone)]
pub enum Msg {
    /// An audit event (access, admin or alert) from the bus or a tailed log.
    Event(Arc<AccessEvent>),
    /// A fresh credential inventory (replaces the previous one), and why the store could not be
    /// read when it could not (the rows are then the last good read).
    Inventory {
        tokens: Vec<TokenRow>,
        certs: Vec<CertRow>,
        store_error: Option<String>,
    },
    /// The policy file as the gate enforces it, and the error of the last failed reload if any.
    Policies {
        apps: Vec<AppRow>,
        reload_error: Option<String>,
    },
    /// Rotations in progress or done, newest first (replaces the previous list).
    Rotations(Vec<RotationRow>),
    /// The `[[oidc_issuer]]`s and their key sets, in file order (replaces the previous list).
    Issuers(Vec<IssuerRow>),
    /// The outcome of an `Effect` the runner performed (shown in the footer).
    EffectDone(Result<String, String>),
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
    /// The tailed log's history is loading: `read` of its `total` bytes at start so far
    /// (`read >= total`: loaded, now following).
    Loading {
        read: u64,
        total: u64,
    },
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

/// How many views there are.
pub const VIEWS: usize = 8;

/// The most recent issuer key-set changes kept for the Rotations view.
pub const MAX_KEY_CHANGES: usize = 50;

/// The views, in key order (Issuers came last, so 1–7 kept their meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewId {
    Traffic,
    Tokens,
    Certs,
    Alerts,
    Policies,
    Rotations,
    Log,
    Issuers,
}

impl ViewId {
    pub const ALL: [ViewId; VIEWS] = [
        ViewId::Traffic,
        ViewId::Tokens,
        ViewId::Certs,
        ViewId::Alerts,
        ViewId::Policies,
        ViewId::Rotations,
        ViewId::Log,
        ViewId::Issuers,
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
            ViewId::Issuers => "Issuers",
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
            ViewId::Issuers => &["file order"],
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

/// A menu of labelled texts over the view: what `Y` can copy from the selected row, or the
/// filters `:filters` can apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    pub purpose: MenuPurpose,
    pub items: Vec<Copyable>,
    pub selected: usize,
}

/// What choosing a menu item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuPurpose {
    /// Copy its text (`Y`).
    Copy,
    /// Apply its text as the filter (`:filters`).
    ApplyFilter,
}

/// Something `update` asks the runner to do outside the state (it has the terminal and may
/// block; `update` may not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Put the text on the terminal's clipboard (`clipboard::osc52`).
    Copy(String),
    /// Write `contents` to `path` (`:export`); the outcome comes back as `Msg::EffectDone`
    /// (`done` on success).
    WriteFile {
        path: PathBuf,
        contents: String,
        done: String,
    },
    /// Replace a file of the config dir (`settings`), creating the dir when missing; the file
    /// is written beside and renamed, so a crash never leaves half of it.
    WriteConfig {
        path: PathBuf,
        contents: String,
        done: String,
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
    /// The store cannot be read: the inventory shown is the last good read.
    pub store_error: Option<String>,
    /// Bytes of the log's history read and its size at start, while it is still loading.
    pub loading: Option<(u64, u64)>,
}

/// Fixed facts shown in the header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderInfo {
    /// Gate listen addresses, e.g. `http://127.0.0.1:8080`.
    pub listen: Vec<String>,
    /// Where events come from: `in-process bus`, `tail /var/lib/botgate/audit.jsonl`.
    pub source: String,
    /// How much of an existing log was read at start (`last 4 MiB`, `since 2h`, `from the
    /// start`); None when events do not come from a log.
    pub history: Option<String>,
    pub read_only: bool,
}

/// What the views draw while frozen (`f`, `:freeze`): the event-fed state as it was then. The
/// live state keeps ingesting beside it; unfreezing drops this and the views show live again.
/// While frozen, events that left the live ring stay alive here, so memory is at most twice the
/// ring until unfreeze.
#[derive(Debug, Clone)]
pub struct Frozen {
    pub traffic: Traffic,
    pub alerts: AlertBook,
    pub filtered: VecDeque<u64>,
    /// The clock when frozen: the charts end here.
    pub at: DateTime<Utc>,
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
    /// The `[[oidc_issuer]]`s (Issuers view).
    pub issuers: Vec<IssuerRow>,
    /// Issuers' key-set changes seen in the events, newest first (Rotations view).
    pub key_changes: VecDeque<KeyChangeRow>,
    /// The applied filter.
    pub filter: Filter,
    /// What is being typed after `/` (None when not typing).
    pub filter_input: Option<String>,
    /// Filters applied, oldest first (↑/↓ while typing after `/`).
    pub filter_history: Vec<String>,
    /// Where ↑/↓ are in `filter_history`.
    pub filter_walk: Walk,
    /// Ring sequence numbers of the events matching a non-empty filter, oldest first.
    pub filtered: VecDeque<u64>,
    pub overlay: Option<Overlay>,
    /// The `Y` copy menu or the `:filters` menu while it is open.
    pub menu: Option<Menu>,
    /// Effects `update` asked for and the runner has not performed yet.
    pub effects: Vec<Effect>,
    /// Selected row per view (for the Log view: counted from the newest event).
    pub selected: [usize; VIEWS],
    /// First row shown per view's table, as last drawn (the table scrolls only when the
    /// selection leaves the screen; see `views::widgets::window_offset`).
    pub scroll: [usize; VIEWS],
    /// Sort order per view, an index into `ViewId::sort_orders`.
    pub sort: [usize; VIEWS],
    pub feed: FeedStatus,
    /// Set while the views are frozen (`f`); `traffic`, `alerts` and `filtered` stay live.
    pub frozen: Option<Box<Frozen>>,
    /// The chart's time window and cursor (`[` `]` `,` `.`), which the tables follow.
    pub time: TimeSelection,
    /// The identities of the selected interval (`window::refresh_window`), while a window is
    /// selected.
    pub window_identities: Option<Identities>,
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
    /// The console's config dir (`settings::config_dir`; tests use a temp dir), where `:save`
    /// writes; None: the system has none, and `:save` says so.
    pub config_dir: Option<PathBuf>,
    /// Filters saved with `:save NAME`, as last read or written.
    pub saved_filters: NamedFilters,
    /// The columns chosen per view with `:columns` (`views::columns`).
    pub columns: ColumnChoices,
    /// The key bindings in effect (the shipped ones, or with the config dir's `keys.toml`).
    pub keymap: Keymap,
    /// Actions `update` asked for and the runner has not handed to the worker yet.
    pub pending_actions: Vec<ConsoleAction>,
    /// Whether an action worker exists (the console has a store to change).
    pub actions_available: bool,
    /// The answer to the last action, shown in the wizard panel.
    pub last_action: Option<Result<String, String>>,
    /// Terminal size as last reported.
    pub size: (u16, u16),
    /// The selected Tokens/Certs row's details for the split pane under the table (as its
    /// `Enter` window says); refreshed on every message but events, so at most a tick old.
    pub pane: Option<(String, Vec<String>)>,
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
            issuers: Vec::new(),
            key_changes: VecDeque::new(),
            filter: Filter::default(),
            filter_input: None,
            filter_history: Vec::new(),
            filter_walk: Walk::default(),
            filtered: VecDeque::new(),
            overlay: None,
            menu: None,
            effects: Vec::new(),
            selected: [0; VIEWS],
            scroll: [0; VIEWS],
            sort: [0; VIEWS],
            feed: FeedStatus::default(),
            frozen: None,
            time: TimeSelection::default(),
            window_identities: None,
            prompt: None,
            command: None,
            command_history: Vec::new(),
            message: None,
            themes: super::theme::catalogue(None),
            config_dir: None,
            saved_filters: NamedFilters::default(),
            columns: ColumnChoices::default(),
            keymap: Keymap::default(),
            pending_actions: Vec::new(),
            actions_available: false,
            last_action: None,
            size: (80, 24),
            pane: None,
            should_quit: false,
        }
    }

    /// Where the keyboard focus is.
    pub fn context(&self) -> Context {
        if self.menu.is_some() {
            Context::Menu
        } else if self.overlay.is_some() {
            Context::Overlay
        } else if let Some(p) = &self.prompt {
            match p {
                Prompt::ConfirmAbort { .. } => Context::YesNo,
                Prompt::TypeName { .. } | Prompt::ChooseTokenRotation { .. } => Context::TextPrompt,
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

    /// The traffic aggregates the views draw: as frozen, or live.
    pub fn shown_traffic(&self) -> &Traffic {
        self.frozen.as_ref().map_or(&self.traffic, |f| &f.traffic)
    }

    /// The alerts the views draw: as frozen, or live.
    pub fn shown_alerts(&self) -> &AlertBook {
        self.frozen.as_ref().map_or(&self.alerts, |f| &f.alerts)
    }

    /// Ring sequence numbers matching the filter, of the ring the views draw.
    pub fn shown_filtered(&self) -> &VecDeque<u64> {
        self.frozen.as_ref().map_or(&self.filtered, |f| &f.filtered)
    }

    /// The second the charts end at: when frozen, or now.
    pub fn shown_now(&self) -> DateTime<Utc> {
        self.frozen.as_ref().map_or(self.now, |f| f.at)
    }

    /// Events that arrived since the views were frozen (0 when live).
    pub fn new_since_frozen(&self) -> u64 {
        self.frozen
            .as_ref()
            .map_or(0, |f| self.traffic.totals.events - f.traffic.totals.events)
    }

    /// Copy `c` to the terminal's clipboard and say so in the footer.
    fn copy(&mut self, c: Copyable) {
        let shown = if c.text.chars().count() <= 64 && !c.text.contains('\n') {
            c.text.clone()
        } else {
            format!("({} bytes)", c.text.len())
        };
        self.message = Some(Ok(format!("copied {} {shown} (OSC 52)", c.what)));
        self.effects.push(Effect::Copy(c.text));
    }

    /// A key while a menu is open.
    fn menu_key(&mut self, action: Option<Action>) {
        let Some(menu) = &mut self.menu else {
            return;
        };
        match action {
            Some(Action::Down) => {
                menu.selected = (menu.selected + 1).min(menu.items.len().saturating_sub(1));
            }
            Some(Action::Up) => menu.selected = menu.selected.saturating_sub(1),
            Some(Action::Confirm) => {
                let purpose = menu.purpose;
                let item = menu.items.get(menu.selected).cloned();
                self.menu = None;
                match (item, purpose) {
                    (Some(item), MenuPurpose::Copy) => self.copy(item),
                    (Some(item), MenuPurpose::ApplyFilter) => self.apply_named_filter(&item),
                    (None, _) => {}
                }
            }
            Some(Action::Cancel) => self.menu = None,
            _ => {}
        }
    }

    /// Freeze the views on what they show now, or unfreeze and jump to live (the Log view's
    /// selection goes back to the newest event).
    pub(super) fn toggle_freeze(&mut self) {
        if self.frozen.take().is_some() {
            let log = ViewId::Log.index();
            self.selected[log] = 0;
            self.scroll[log] = 0;
            self.clamp_selections();
            self.message = Some(Ok("live".into()));
        } else {
            self.frozen = Some(Box::new(Frozen {
                traffic: self.traffic.clone(),
                alerts: self.alerts.clone(),
                filtered: self.filtered.clone(),
                at: self.now,
            }));
            self.message = Some(Ok(
                "frozen: new events are counted, not shown; f unfreezes".into()
            ));
        }
        self.refresh_window();
    }

    fn ingest(&mut self, ev: Arc<AccessEvent>) {
        match ev.event {
            EventKind::Alert => self.alerts.apply_alert_event(&ev),
            EventKind::Admin => {
                if let Some(change) = KeyChangeRow::of_event(&ev) {
                    self.key_changes.push_front(change);
                    self.key_changes.truncate(MAX_KEY_CHANGES);
                }
            }
            EventKind::Access => {}
        }
        let seq = self.traffic.record(&ev);
        // A live window's identities take the new event at once (its oldest leave at the next
        // step, `Msg::Tick`); a cursor's or a frozen view's interval does not change.
        if self.time.cursor.is_none()
            && self.frozen.is_none()
            && let Some(ids) = &mut self.window_identities
        {
            ids.add(&*ev);
        }
        let visible_in_log = if self.filter.is_empty() {
            true
        } else if self.filter.matches_event(&*ev) {
            self.filtered.push_back(seq);
            true
        } else {
            false
        };
        let first = self.traffic.ring.first_seq();
        while self.filtered.front().is_some_and(|&s| s < first) {
            self.filtered.pop_front();
        }
        // Keep the row the user is reading in the Log view under the cursor as new ones arrive
        // (a frozen Log view does not move at all).
        let log = ViewId::Log.index();
        // (Nor does one showing a past interval under the chart cursor.)
        if visible_in_log
            && self.frozen.is_none()
            && self.time.cursor.is_none()
            && self.selected[log] > 0
        {
            self.selected[log] =
                (self.selected[log] + 1).min(rows::log_len(self).saturating_sub(1));
            if self.scroll[log] > 0 {
                self.scroll[log] += 1;
            }
        }
    }

    /// Recompute the split pane's details (Tokens and Certs views only: a ring scan).
    fn refresh_pane(&mut self) {
        self.pane = if matches!(self.view, ViewId::Tokens | ViewId::Certs) {
            rows::details(self)
        } else {
            None
        };
    }

    pub(super) fn set_filter(&mut self, text: &str) {
        let f = Filter::parse(text);
        if f == self.filter {
            return;
        }
        self.filter = f;
        self.filtered = matching(&self.filter, &self.traffic.ring);
        if let Some(frozen) = &mut self.frozen {
            frozen.filtered = matching(&self.filter, &frozen.traffic.ring);
        }
        self.selected = [0; VIEWS];
        self.scroll = [0; VIEWS];
    }

    /// Show `view` (digit keys, Tab, a click on its tab, `:name`).
    pub(super) fn show_view(&mut self, view: ViewId) {
        self.view = view;
    }

    fn key(&mut self, key: KeyEvent) {
        let context = self.context();
        let action = self.keymap.action_for(&key, context);
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
        if context == Context::Menu {
            self.menu_key(action);
            return;
        }
        if context == Context::FilterInput {
            match action {
                Some(Action::ApplyFilter) => {
                    self.filter_input = None;
                    history::push(&mut self.filter_history, self.filter.text());
                }
                Some(walk @ (Action::HistoryPrev | Action::HistoryNext)) => {
                    let mut text = self.filter_input.take().unwrap_or_default();
                    if walk == Action::HistoryPrev {
                        self.filter_walk.prev(&self.filter_history, &mut text);
                    } else {
                        self.filter_walk.next(&self.filter_history, &mut text);
                    }
                    self.set_filter(&text);
                    self.filter_input = Some(text);
                }
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
                        self.filter_walk.edited();
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
            Action::StartFilter => {
                self.filter_walk = Walk::default();
                self.filter_input = Some(self.filter.text().to_string());
            }
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
            Action::Back => {
                if !self.leave_cursor() {
                    self.set_filter("");
                }
            }
            Action::NarrowWindow => self.step_window(false),
            Action::WidenWindow => self.step_window(true),
            Action::CursorEarlier => self.move_cursor(false),
            Action::CursorLater => self.move_cursor(true),
            Action::ToggleFreeze => self.toggle_freeze(),
            Action::CopyKey => match clipboard::key_field(self) {
                Some(c) => self.copy(c),
                None => self.message = Some(Err("nothing selected to copy".into())),
            },
            Action::CopyMenu => {
                let items = clipboard::menu(self);
                if items.is_empty() {
                    self.message = Some(Err("nothing selected to copy".into()));
                } else {
                    self.menu = Some(Menu {
                        purpose: MenuPurpose::Copy,
                        items,
                        selected: 0,
                    });
                }
            }
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

/// Sequence numbers of the events in `ring` that a non-empty `filter` matches, oldest first.
fn matching(filter: &Filter, ring: &super::aggregate::EventRing) -> VecDeque<u64> {
    if filter.is_empty() {
        return VecDeque::new();
    }
    (ring.first_seq()..ring.first_seq() + ring.len() as u64)
        .filter(|&seq| ring.get(seq).is_some_and(|e| filter.matches_event(e)))
        .collect()
}

/// The one state transition. Pure: no I/O, no clock reads, no awaits.
pub fn update(state: &mut AppState, msg: Msg) {
    let event = matches!(msg, Msg::Event(_));
    apply(state, msg);
    if !event {
        state.refresh_pane();
    }
}

fn apply(state: &mut AppState, msg: Msg) {
    match msg {
        Msg::Event(ev) => state.ingest(ev),
        Msg::Inventory {
            tokens,
            certs,
            store_error,
        } => {
            state.tokens = tokens;
            state.certs = certs;
            state.feed.store_error = store_error;
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
        Msg::Issuers(rows) => {
            state.issuers = rows;
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
            let before = state.now;
            state.now = now;
            // A live window's start moved with the clock (a frozen one's did not): its oldest
            // events leave the identities once per cursor step (1/60 of the window), so a
            // day's window is not recounted every second.
            if let Some(w) = state.time.window
                && state.frozen.is_none()
                && before.timestamp().div_euclid(w.step()) != now.timestamp().div_euclid(w.step())
            {
                state.refresh_window();
            }
        }
        Msg::Resize(w, h) => {
            state.size = (w, h);
            state.remember_scroll();
        }
        Msg::Dropped(n) => state.feed.dropped += n,
        Msg::Loading { read, total } => {
            state.feed.loading = (read < total).then_some((read, total));
        }
        Msg::CorruptLine { line, error } => {
            state.feed.corrupt_lines += 1;
            state.feed.last_corrupt = Some(format!("line {line}: {error}"));
        }
        Msg::Notice(text) => state.feed.notice = Some(text),
        Msg::EffectDone(result) => state.message = Some(result),
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
