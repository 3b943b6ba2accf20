//! The one list of key bindings. Dispatch, the footer hints and the `?` help overlay all read
//! a `Keymap`: `BINDINGS` with the keys the user rebound in the config dir's `keys.toml`
//! (`rebind`) put in, so the help can never drift from what the keys really do.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::ViewId;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    ToggleHelp,
    /// Switch to the view numbered by the digit pressed.
    SwitchView,
    NextView,
    PrevView,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    StartFilter,
    CycleSort,
    Details,
    /// Freeze the views on what they show, or unfreeze and jump to live.
    ToggleFreeze,
    /// Copy the selected row's key field (ray id, client id, fingerprint, alert id).
    CopyKey,
    /// Open the copy menu for the selected row (JSON, curl, policy explain).
    CopyMenu,
    /// Close an overlay, leave the chart cursor, or clear the filter.
    Back,
    /// A narrower time window for the Traffic chart and the tables below it.
    NarrowWindow,
    /// A wider time window.
    WidenWindow,
    /// Move the chart cursor one step earlier (placing it first if there is none).
    CursorEarlier,
    /// Move the chart cursor one step later.
    CursorLater,
    /// Filter input: apply what was typed.
    ApplyFilter,
    /// Filter input: drop the filter and close the input.
    CancelFilter,
    /// Filter or prompt input: delete the last character.
    DeleteChar,
    /// Tokens/Certs: start a rotation of the selected credential.
    StartRotation,
    /// Rotations: perform the next step of the selected rotation.
    NextStep,
    /// Rotations: revoke the old credential now (asks for its name typed).
    RevokeNow,
    /// Rotations: abort the selected rotation (asks y/n).
    AbortRotation,
    /// Prompt: yes / submit what was typed.
    Confirm,
    /// Prompt: no / cancel.
    Cancel,
    /// Open the `:` command line in the footer.
    StartCommand,
    /// Command line: run what was typed.
    RunCommand,
    /// Command line: complete the command or its argument.
    Complete,
    /// Command line: the previous command run.
    HistoryPrev,
    /// Command line: the next command run (or back to what was being typed).
    HistoryNext,
}

/// Where the keyboard focus is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// A view is showing.
    Normal,
    /// Typing a `/` filter.
    FilterInput,
    /// Help or details overlay.
    Overlay,
    /// A y/n question in the footer.
    YesNo,
    /// Typing an answer in the footer (e.g. a credential's name before a revoke).
    TextPrompt,
    /// Typing a `:` command in the footer.
    CommandInput,
    /// A menu (`Y` copy, `:filters`).
    Menu,
}

/// One key (code + modifiers, with Shift ignored for characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

const fn k(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::NONE,
    }
}
const fn code(c: KeyCode) -> Key {
    Key {
        code: c,
        mods: KeyModifiers::NONE,
    }
}
const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::CONTROL,
    }
}

/// One binding: keys → action in a context, with its footer label and help text.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub context: Context,
    pub keys: &'static [Key],
    pub action: Action,
    /// How the keys are written in the footer and help, e.g. `j/k`.
    pub label: &'static str,
    /// One or two words for the footer; empty = not in the footer.
    pub hint: &'static str,
    /// One line for the help overlay.
    pub help: &'static str,
    /// Views where the footer shows it (empty: every view).
    pub views: &'static [ViewId],
    /// It changes something (a rotation): hidden from the footer and refused when read-only.
    pub changes: bool,
}

use Context::{CommandInput, FilterInput, Menu, Normal, Overlay, TextPrompt, YesNo};

/// Every key binding of the console.
pub const BINDINGS: &[Binding] = &[
    Binding {
        context: Normal,
        keys: &[k('q'), ctrl('c')],
        action: Action::Quit,
        label: "q",
        hint: "quit",
        help: "quit",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k('?')],
        action: Action::ToggleHelp,
        label: "?",
        hint: "help",
        help: "show or hide this help",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[
            k('1'),
            k('2'),
            k('3'),
            k('4'),
            k('5'),
            k('6'),
            k('7'),
            k('8'),
        ],
        action: Action::SwitchView,
        label: "1-8",
        hint: "views",
        help: "switch view: 1 Traffic 2 Tokens 3 Certs 4 Alerts 5 Policies 6 Rotations 7 Log 8 Issuers",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[code(KeyCode::Tab)],
        action: Action::NextView,
        label: "Tab",
        hint: "",
        help: "next view",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[code(KeyCode::BackTab)],
        action: Action::PrevView,
        label: "S-Tab",
        hint: "",
        help: "previous view",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k('j'), code(KeyCode::Down)],
        action: Action::Down,
        label: "j/k",
        hint: "move",
        help: "move down (the mouse wheel scrolls too)",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k('k'), code(KeyCode::Up)],
        action: Action::Up,
        label: "k",
        hint: "",
        help: "move up",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[code(KeyCode::PageDown), ctrl('d')],
        action: Action::PageDown,
        label: "PgDn",
        hint: "",
        help: "page down",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[code(KeyCode::PageUp), ctrl('u')],
        action: Action::PageUp,
        label: "PgUp",
        hint: "",
        help: "page up",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k('g'), code(KeyCode::Home)],
        action: Action::Top,
        label: "g/G",
        hint: "top/end",
        help: "go to the top",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k('G'), code(KeyCode::End)],
        action: Action::Bottom,
        label: "G",
        hint: "",
        help: "go to the bottom",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k('/')],
        action: Action::StartFilter,
        label: "/",
        hint: "filter",
        help: "filter: deny, ci-deploy, country:RU, app:api, reason:revoked, !allow …",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k(':')],
        action: Action::StartCommand,
        label: ":",
        hint: "command",
        help: "command line (Tab completes, ↑/↓ history); the commands are listed below",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k('s')],
        action: Action::CycleSort,
        label: "s",
        hint: "sort",
        help: "cycle the sort order of the current table",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[code(KeyCode::Enter)],
        action: Action::Details,
        label: "Enter",
        hint: "details",
        help: "details of the selected row",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k('f')],
        action: Action::ToggleFreeze,
        label: "f",
        hint: "freeze",
        help: "freeze the views (new events are counted, not shown); again: back to live",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k('y')],
        action: Action::CopyKey,
        label: "y/Y",
        hint: "copy",
        help: "copy the selected row's key field (ray id, client id, fingerprint, alert id) via OSC 52",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k('Y')],
        action: Action::CopyMenu,
        label: "Y",
        hint: "",
        help: "copy menu: the row as JSON, a curl that reproduces the request, the policy explain line",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k('[')],
        action: Action::NarrowWindow,
        label: "[/]",
        hint: "window",
        help: "narrower time window (1m 5m 15m 1h 6h 24h): the chart, identities and tail follow it",
        views: &[ViewId::Traffic, ViewId::Log],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k(']')],
        action: Action::WidenWindow,
        label: "]",
        hint: "",
        help: "wider time window, up to 24h of what was loaded",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k(',')],
        action: Action::CursorEarlier,
        label: ",/.",
        hint: "scrub",
        help: "chart cursor one step (1/60 of the window) earlier: the tables show that interval",
        views: &[ViewId::Traffic, ViewId::Log],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k('.')],
        action: Action::CursorLater,
        label: ".",
        hint: "",
        help: "chart cursor one step later",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[code(KeyCode::Esc)],
        action: Action::Back,
        label: "Esc",
        hint: "",
        help: "leave the chart cursor (back to live), else clear the filter",
        views: &[],
        changes: false,
    },
    Binding {
        context: Normal,
        keys: &[k('r')],
        action: Action::StartRotation,
        label: "r",
        hint: "rotate",
        help: "start a rotation of the selected token (2) or certificate (3)",
        views: &[ViewId::Tokens, ViewId::Certs],
        changes: true,
    },
    Binding {
        context: Normal,
        keys: &[k('n')],
        action: Action::NextStep,
        label: "n",
        hint: "next step",
        help: "rotations (6): perform the next step (revoke asks for the name typed)",
        views: &[ViewId::Rotations],
        changes: true,
    },
    Binding {
        context: Normal,
        keys: &[k('R')],
        action: Action::RevokeNow,
        label: "R",
        hint: "revoke now",
        help: "rotations (6): revoke the old credential now; type its name (forced if unverified)",
        views: &[ViewId::Rotations],
        changes: true,
    },
    Binding {
        context: Normal,
        keys: &[k('x')],
        action: Action::AbortRotation,
        label: "x",
        hint: "abort",
        help: "rotations (6): abort the selected rotation (asks y/n)",
        views: &[ViewId::Rotations],
        changes: true,
    },
    Binding {
        context: FilterInput,
        keys: &[code(KeyCode::Enter)],
        action: Action::ApplyFilter,
        label: "Enter",
        hint: "apply",
        help: "apply the filter",
        views: &[],
        changes: false,
    },
    Binding {
        context: FilterInput,
        keys: &[code(KeyCode::Esc), ctrl('c')],
        action: Action::CancelFilter,
        label: "Esc",
        hint: "clear",
        help: "clear the filter",
        views: &[],
        changes: false,
    },
    Binding {
        context: FilterInput,
        keys: &[code(KeyCode::Backspace)],
        action: Action::DeleteChar,
        label: "Bksp",
        hint: "delete",
        help: "delete a character",
        views: &[],
        changes: false,
    },
    Binding {
        context: FilterInput,
        keys: &[code(KeyCode::Up)],
        action: Action::HistoryPrev,
        label: "↑/↓",
        hint: "history",
        help: "previous filter",
        views: &[],
        changes: false,
    },
    Binding {
        context: FilterInput,
        keys: &[code(KeyCode::Down)],
        action: Action::HistoryNext,
        label: "↓",
        hint: "",
        help: "next filter",
        views: &[],
        changes: false,
    },
    Binding {
        context: CommandInput,
        keys: &[code(KeyCode::Enter)],
        action: Action::RunCommand,
        label: "Enter",
        hint: "run",
        help: "run the command",
        views: &[],
        changes: false,
    },
    Binding {
        context: CommandInput,
        keys: &[code(KeyCode::Tab)],
        action: Action::Complete,
        label: "Tab",
        hint: "complete",
        help: "complete the command or its argument",
        views: &[],
        changes: false,
    },
    Binding {
        context: CommandInput,
        keys: &[code(KeyCode::Up)],
        action: Action::HistoryPrev,
        label: "↑/↓",
        hint: "history",
        help: "previous command",
        views: &[],
        changes: false,
    },
    Binding {
        context: CommandInput,
        keys: &[code(KeyCode::Down)],
        action: Action::HistoryNext,
        label: "↓",
        hint: "",
        help: "next command",
        views: &[],
        changes: false,
    },
    Binding {
        context: CommandInput,
        keys: &[code(KeyCode::Esc), ctrl('c')],
        action: Action::Cancel,
        label: "Esc",
        hint: "cancel",
        help: "close the command line",
        views: &[],
        changes: false,
    },
    Binding {
        context: CommandInput,
        keys: &[code(KeyCode::Backspace)],
        action: Action::DeleteChar,
        label: "Bksp",
        hint: "",
        help: "delete a character",
        views: &[],
        changes: false,
    },
    Binding {
        context: YesNo,
        keys: &[k('y')],
        action: Action::Confirm,
        label: "y",
        hint: "yes",
        help: "yes",
        views: &[],
        changes: false,
    },
    Binding {
        context: YesNo,
        keys: &[k('n'), code(KeyCode::Esc), ctrl('c')],
        action: Action::Cancel,
        label: "n/Esc",
        hint: "no",
        help: "no",
        views: &[],
        changes: false,
    },
    Binding {
        context: TextPrompt,
        keys: &[code(KeyCode::Enter)],
        action: Action::Confirm,
        label: "Enter",
        hint: "confirm",
        help: "confirm what was typed",
        views: &[],
        changes: false,
    },
    Binding {
        context: TextPrompt,
        keys: &[code(KeyCode::Esc), ctrl('c')],
        action: Action::Cancel,
        label: "Esc",
        hint: "cancel",
        help: "cancel",
        views: &[],
        changes: false,
    },
    Binding {
        context: TextPrompt,
        keys: &[code(KeyCode::Backspace)],
        action: Action::DeleteChar,
        label: "Bksp",
        hint: "delete",
        help: "delete a character",
        views: &[],
        changes: false,
    },
    Binding {
        context: Menu,
        keys: &[k('j'), code(KeyCode::Down)],
        action: Action::Down,
        label: "j/k",
        hint: "move",
        help: "next item",
        views: &[],
        changes: false,
    },
    Binding {
        context: Menu,
        keys: &[k('k'), code(KeyCode::Up)],
        action: Action::Up,
        label: "k",
        hint: "",
        help: "previous item",
        views: &[],
        changes: false,
    },
    Binding {
        context: Menu,
        keys: &[code(KeyCode::Enter), k('y')],
        action: Action::Confirm,
        label: "Enter",
        hint: "choose",
        help: "copy the item, or apply the filter",
        views: &[],
        changes: false,
    },
    Binding {
        context: Menu,
        keys: &[code(KeyCode::Esc), k('q'), ctrl('c')],
        action: Action::Cancel,
        label: "Esc",
        hint: "close",
        help: "close the menu",
        views: &[],
        changes: false,
    },
    Binding {
        context: Overlay,
        keys: &[code(KeyCode::Esc), k('q'), code(KeyCode::Enter), k('?')],
        action: Action::Back,
        label: "Esc",
        hint: "close",
        help: "close this window",
        views: &[],
        changes: false,
    },
    Binding {
        context: Overlay,
        keys: &[k('j'), code(KeyCode::Down)],
        action: Action::Down,
        label: "j/k",
        hint: "scroll",
        help: "scroll",
        views: &[],
        changes: false,
    },
    Binding {
        context: Overlay,
        keys: &[k('k'), code(KeyCode::Up)],
        action: Action::Up,
        label: "k",
        hint: "",
        help: "scroll up",
        views: &[],
        changes: false,
    },
    Binding {
        context: Overlay,
        keys: &[ctrl('c')],
        action: Action::Quit,
        label: "C-c",
        hint: "",
        help: "quit",
        views: &[],
        changes: false,
    },
];

impl Key {
    pub const fn new(code: KeyCode, mods: KeyModifiers) -> Self {
        Self { code, mods }
    }

    fn matches(&self, ev: &KeyEvent) -> bool {
        // Terminals report Shift with upper-case letters and symbols like `?`; the character
        // already says it.
        let mods = match ev.code {
            KeyCode::Char(_) | KeyCode::BackTab => ev.modifiers - KeyModifiers::SHIFT,
            _ => ev.modifiers,
        };
        self.code == ev.code && self.mods == mods
    }
}

/// One binding as in effect: its keys and footer label may be the user's.
#[derive(Debug, Clone)]
pub struct Bound {
    pub binding: &'static Binding,
    pub keys: Vec<Key>,
    pub label: String,
}

/// The bindings in effect: `BINDINGS`, with the keys of some rebound (`rebind::load`).
#[derive(Debug, Clone)]
pub struct Keymap {
    bound: Vec<Bound>,
}

impl Default for Keymap {
    /// The shipped bindings.
    fn default() -> Self {
        Self {
            bound: BINDINGS
                .iter()
                .map(|b| Bound {
                    binding: b,
                    keys: b.keys.to_vec(),
                    label: b.label.to_string(),
                })
                .collect(),
        }
    }
}

impl Keymap {
    /// Every binding in effect, in `BINDINGS` order.
    pub fn bindings(&self) -> &[Bound] {
        &self.bound
    }

    /// Give the binding of `action` in `context` these keys (the label becomes their names).
    pub(super) fn rebind(&mut self, context: Context, action: Action, keys: Vec<Key>) {
        for b in self
            .bound
            .iter_mut()
            .filter(|b| b.binding.context == context && b.binding.action == action)
        {
            b.label = keys.iter().map(key_name).collect::<Vec<_>>().join("/");
            b.keys = keys.clone();
        }
    }

    /// The action bound to `ev` in `context`, if any. Key releases are ignored.
    pub fn action_for(&self, ev: &KeyEvent, context: Context) -> Option<Action> {
        if ev.kind == KeyEventKind::Release {
            return None;
        }
        self.bound
            .iter()
            .find(|b| b.binding.context == context && b.keys.iter().any(|k| k.matches(ev)))
            .map(|b| b.binding.action)
    }

    /// `(label, hint)` pairs for the footer in `context` on `view`; bindings that change
    /// something are left out of a read-only console.
    pub fn footer_hints(
        &self,
        context: Context,
        view: ViewId,
        read_only: bool,
    ) -> impl Iterator<Item = (&str, &'static str)> {
        self.bound
            .iter()
            .filter(move |b| {
                let b = b.binding;
                b.context == context
                    && !b.hint.is_empty()
                    && (b.views.is_empty() || b.views.contains(&view))
                    && !(read_only && b.changes)
            })
            .map(|b| (b.label.as_str(), b.binding.hint))
    }

    /// The help overlay lines `(keys, help)` for views; the key column lists every bound key.
    pub fn help_lines(&self) -> impl Iterator<Item = (String, &'static str)> + '_ {
        self.bound
            .iter()
            .filter(|b| b.binding.context == Normal)
            .map(|b| {
                (
                    b.keys.iter().map(key_name).collect::<Vec<_>>().join(" "),
                    b.binding.help,
                )
            })
    }
}

/// How a key is written: `q`, `Ctrl-C`, `Enter`, `↓`.
pub fn key_name(k: &Key) -> String {
    let base = match k.code {
        KeyCode::Char(' ') => "Space".into(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Enter => "Enter".into(),
        KeyCode::Esc => "Esc".into(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::BackTab => "Shift-Tab".into(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        KeyCode::Backspace => "Backspace".into(),
        KeyCode::F(n) => format!("F{n}"),
        other => format!("{other:?}"),
    };
    if k.mods.contains(KeyModifiers::CONTROL) {
        format!("Ctrl-{}", base.to_uppercase())
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(c, m)
    }

    #[test]
    fn dispatch_uses_the_context() {
        let m = Keymap::default();
        let q = key(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(m.action_for(&q, Context::Normal), Some(Action::Quit));
        assert_eq!(m.action_for(&q, Context::Overlay), Some(Action::Back));
        assert_eq!(
            m.action_for(&q, Context::FilterInput),
            None,
            "typed as text"
        );
        let shift_g = key(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(
            m.action_for(&shift_g, Context::Normal),
            Some(Action::Bottom)
        );
        let ctrl_c = key(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(m.action_for(&ctrl_c, Context::Normal), Some(Action::Quit));
    }

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        for (i, a) in BINDINGS.iter().enumerate() {
            for b in &BINDINGS[i + 1..] {
                if a.context == b.context {
                    for k in a.keys {
                        assert!(
                            !b.keys.contains(k),
                            "{:?} bound to {:?} and {:?}",
                            k,
                            a.action,
                            b.action
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn footer_and_help_come_from_the_bindings() {
        let m = Keymap::default();
        let footer: Vec<_> = m
            .footer_hints(Context::Normal, ViewId::Traffic, false)
            .collect();
        assert!(footer.contains(&("q", "quit")) && footer.contains(&("/", "filter")));
        assert!(
            !footer.contains(&("r", "rotate")),
            "only on tokens and certs"
        );
        let tokens: Vec<_> = m
            .footer_hints(Context::Normal, ViewId::Tokens, false)
            .collect();
        assert!(tokens.contains(&("r", "rotate")));
        let read_only: Vec<_> = m
            .footer_hints(Context::Normal, ViewId::Tokens, true)
            .collect();
        assert!(
            !read_only.contains(&("r", "rotate")),
            "hidden when read-only"
        );
        let help: Vec<_> = m.help_lines().collect();
        assert_eq!(
            help.len(),
            BINDINGS
                .iter()
                .filter(|b| b.context == Context::Normal)
                .count()
        );
        assert!(help.iter().any(|(keys, _)| keys == "q Ctrl-C"));
    }
}
