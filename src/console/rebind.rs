//! Key bindings from the config dir's `keys.toml`: each line gives one view action new keys,
//! replacing its shipped ones, and the `Keymap` built from them feeds dispatch, the footer and
//! the `?` help like the shipped one does. Read once at start; any problem (an unknown action
//! or key name, a key bound twice) is an error naming the file and line, never a console that
//! half-applied the file.
//!
//! ```toml
//! [keys]
//! freeze = "p"
//! copy = ["y", "c"]
//! narrower-window = "Ctrl-Left"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crossterm::event::{KeyCode, KeyModifiers};
use serde::Deserialize;

use super::keymap::{Action, BINDINGS, Context, Key, Keymap, key_name};
use super::settings::line_of;

/// The key bindings file, in the config dir.
pub const KEYS_FILE: &str = "keys.toml";

/// The names of the view actions a keys file can rebind, as written there.
pub const ACTIONS: &[(&str, Action)] = &[
    ("quit", Action::Quit),
    ("help", Action::ToggleHelp),
    ("next-view", Action::NextView),
    ("prev-view", Action::PrevView),
    ("down", Action::Down),
    ("up", Action::Up),
    ("page-down", Action::PageDown),
    ("page-up", Action::PageUp),
    ("top", Action::Top),
    ("bottom", Action::Bottom),
    ("filter", Action::StartFilter),
    ("command", Action::StartCommand),
    ("sort", Action::CycleSort),
    ("details", Action::Details),
    ("freeze", Action::ToggleFreeze),
    ("copy", Action::CopyKey),
    ("copy-menu", Action::CopyMenu),
    ("back", Action::Back),
    ("narrower-window", Action::NarrowWindow),
    ("wider-window", Action::WidenWindow),
    ("cursor-earlier", Action::CursorEarlier),
    ("cursor-later", Action::CursorLater),
    ("rotate", Action::StartRotation),
    ("next-step", Action::NextStep),
    ("revoke-now", Action::RevokeNow),
    ("abort", Action::AbortRotation),
];

/// Why a keys file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    Toml {
        file: String,
        source: Box<toml::de::Error>,
    },
    #[error("{file}:{line}: unknown action {name:?}; the actions are: {known}")]
    UnknownAction {
        file: String,
        line: usize,
        name: String,
        known: String,
    },
    #[error("{file}:{line}: {action} = {key:?}: {problem}")]
    BadKey {
        file: String,
        line: usize,
        action: &'static str,
        key: String,
        problem: String,
    },
    #[error("{file}:{line}: {action} has no key; give one, e.g. {action} = \"p\"")]
    NoKey {
        file: String,
        line: usize,
        action: &'static str,
    },
    #[error(
        "{file}:{line}: {action} = {key:?}: {key} is already bound to {other} ({other_at}); rebind {other} too, or pick another key"
    )]
    Conflict {
        file: String,
        line: usize,
        action: &'static str,
        key: String,
        other: &'static str,
        other_at: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: BTreeMap<String, toml::Spanned<OneOrMany>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The keymap `text` (a keys file, named `file` in errors) describes.
pub fn parse(text: &str, file: &str) -> Result<Keymap, KeysError> {
    let parsed: KeysFile = toml::from_str(text).map_err(|e| KeysError::Toml {
        file: file.into(),
        source: Box::new(e),
    })?;
    // Each rebound action: its keys and the line that said so.
    let mut rebound: Vec<(Action, &'static str, Vec<Key>, usize)> = Vec::new();
    for (name, spec) in &parsed.keys {
        let line = line_of(text, spec.span().start);
        let Some(&(name, action)) = ACTIONS.iter().find(|(n, _)| n == name) else {
            return Err(KeysError::UnknownAction {
                file: file.into(),
                line,
                name: name.clone(),
                known: ACTIONS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        };
        let texts = match spec.get_ref() {
            OneOrMany::One(k) => vec![k.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        };
        if texts.is_empty() {
            return Err(KeysError::NoKey {
                file: file.into(),
                line,
                action: name,
            });
        }
        let mut keys = Vec::new();
        for k in texts {
            let key = parse_key(k).map_err(|problem| KeysError::BadKey {
                file: file.into(),
                line,
                action: name,
                key: k.into(),
                problem,
            })?;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        rebound.push((action, name, keys, line));
    }
    let mut map = Keymap::default();
    for (action, _, keys, _) in &rebound {
        map.rebind(Context::Normal, *action, keys.clone());
    }
    // A key may mean one thing in the views: check every rebound key against every other
    // view binding as it now stands.
    for (action, name, keys, line) in &rebound {
        for key in keys {
            let clash = map.bindings().iter().find(|b| {
                b.binding.context == Context::Normal
                    && b.binding.action != *action
                    && b.keys.contains(key)
            });
            if let Some(other) = clash {
                let other_action = other.binding.action;
                let (other_name, other_at) = match rebound.iter().find(|r| r.0 == other_action) {
                    Some((_, n, _, l)) => (*n, format!("line {l}")),
                    None => (
                        ACTIONS
                            .iter()
                            .find(|(_, a)| *a == other_action)
                            .map_or(other.binding.label, |(n, _)| *n),
                        "built in".to_string(),
                    ),
                };
                return Err(KeysError::Conflict {
                    file: file.into(),
                    line: *line,
                    action: name,
                    key: key_name(key),
                    other: other_name,
                    other_at,
                });
            }
        }
    }
    debug_assert!(BINDINGS.len() == map.bindings().len());
    Ok(map)
}

/// Read `<dir>/keys.toml`; the shipped bindings when it does not exist.
pub fn load(dir: &Path) -> Result<Keymap, KeysError> {
    let path = dir.join(KEYS_FILE);
    match super::settings::read_settings_file(&path) {
        Ok(Some(text)) => parse(&text, &path.display().to_string()),
        Ok(None) => Ok(Keymap::default()),
        Err(source) => Err(KeysError::Read { path, source }),
    }
}

/// A key as written in a keys file: one character (`p`, `?`, `G`), a name (`Enter`, `Esc`,
/// `Tab`, `Shift-Tab`, `Space`, `Backspace`, `Up`, `Down`, `Left`, `Right`, `PgUp`, `PgDn`,
/// `Home`, `End`, `F1`–`F12`), or `Ctrl-` and one of them.
pub fn parse_key(text: &str) -> Result<Key, String> {
    let t = text.trim();
    let (mods, rest) = match t
        .strip_prefix("Ctrl-")
        .or_else(|| t.strip_prefix("ctrl-"))
        .or_else(|| t.strip_prefix("C-"))
    {
        Some(rest) if !rest.is_empty() => (KeyModifiers::CONTROL, rest),
        _ => (KeyModifiers::NONE, t),
    };
    let mut chars = rest.chars();
    let code = match (chars.next(), chars.next()) {
        (Some(c), None) => KeyCode::Char(if mods == KeyModifiers::CONTROL {
            c.to_ascii_lowercase()
        } else {
            c
        }),
        _ => match rest.to_ascii_lowercase().as_str() {
            "enter" | "return" => KeyCode::Enter,
            "esc" | "escape" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "shift-tab" | "backtab" => KeyCode::BackTab,
            "space" => KeyCode::Char(' '),
            "backspace" => KeyCode::Backspace,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "pgup" | "pageup" => KeyCode::PageUp,
            "pgdn" | "pagedown" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            f if f.starts_with('f') => match f[1..].parse::<u8>() {
                Ok(n @ 1..=12) => KeyCode::F(n),
                _ => return Err(unknown_key()),
            },
            "" => return Err("empty; give a key, e.g. \"p\" or \"Ctrl-p\"".into()),
            _ => return Err(unknown_key()),
        },
    };
    Ok(Key::new(code, mods))
}

fn unknown_key() -> String {
    "not a key; use one character (p, ?, G), Ctrl-p, or a name: Enter Esc Tab Shift-Tab Space \
     Backspace Up Down Left Right PgUp PgDn Home End F1-F12"
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::app::ViewId;
    use crossterm::event::KeyEvent;

    #[test]
    fn every_rebindable_action_is_a_view_binding() {
        for (name, action) in ACTIONS {
            assert!(
                BINDINGS
                    .iter()
                    .any(|b| b.context == Context::Normal && b.action == *action),
                "{name}"
            );
        }
    }

    #[test]
    fn key_names_parse() {
        let k = |t| parse_key(t).unwrap();
        assert_eq!(k("p"), Key::new(KeyCode::Char('p'), KeyModifiers::NONE));
        assert_eq!(
            k("Ctrl-P"),
            Key::new(KeyCode::Char('p'), KeyModifiers::CONTROL)
        );
        assert_eq!(
            k("C-x"),
            Key::new(KeyCode::Char('x'), KeyModifiers::CONTROL)
        );
        assert_eq!(k("pgdn"), Key::new(KeyCode::PageDown, KeyModifiers::NONE));
        assert_eq!(k("F5"), Key::new(KeyCode::F(5), KeyModifiers::NONE));
        assert_eq!(k("Space"), Key::new(KeyCode::Char(' '), KeyModifiers::NONE));
        assert!(parse_key("F13").unwrap_err().starts_with("not a key"));
        assert!(parse_key("Hyper-x").is_err());
        assert!(parse_key("").unwrap_err().starts_with("empty"));
    }

    #[test]
    fn a_rebound_key_dispatches_and_the_old_one_is_free() {
        let map = parse(
            "[keys]\nfreeze = \"p\"\ncopy = [\"y\", \"c\"]\n",
            "keys.toml",
        )
        .unwrap();
        let ev = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
        assert_eq!(
            map.action_for(&ev('p'), Context::Normal),
            Some(Action::ToggleFreeze)
        );
        assert_eq!(map.action_for(&ev('f'), Context::Normal), None);
        assert_eq!(
            map.action_for(&ev('c'), Context::Normal),
            Some(Action::CopyKey)
        );
        let footer: Vec<_> = map
            .footer_hints(Context::Normal, ViewId::Traffic, false)
            .collect();
        assert!(footer.contains(&("p", "freeze")) && footer.contains(&("y/c", "copy")));
        assert!(
            map.help_lines()
                .any(|(keys, help)| keys == "p" && help.starts_with("freeze"))
        );
        // The other contexts keep their keys: `y` still answers a y/n prompt.
        assert_eq!(
            map.action_for(&ev('y'), Context::YesNo),
            Some(Action::Confirm)
        );
    }

    #[test]
    fn a_conflict_names_the_file_the_line_and_both_actions() {
        let e = parse("[keys]\nfreeze = \"q\"\n", "/cfg/keys.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/cfg/keys.toml:2: freeze = \"q\": q is already bound to quit (built in); rebind quit too, or pick another key"
        );
        let both = "[keys]\nfreeze = \"p\"\nsort = \"p\"\n";
        let e = parse(both, "keys.toml").unwrap_err().to_string();
        assert!(
            e.starts_with("keys.toml:2: freeze = \"p\": p is already bound to sort (line 3)"),
            "{e}"
        );
        // Swapping two keys is fine: each is rebound.
        assert!(parse("[keys]\nfreeze = \"s\"\nsort = \"f\"\n", "keys.toml").is_ok());
        // Digits switch views.
        let e = parse("[keys]\nhelp = \"3\"\n", "keys.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 is already bound to 1-8 (built in)"), "{e}");
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        let e = parse("[keys]\n\nfrezze = \"p\"\n", "keys.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("keys.toml:3: unknown action \"frezze\"; the actions are: quit"),
            "{e}"
        );
        let e = parse("[keys]\nfreeze = \"Hyper-p\"\n", "keys.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("keys.toml:2: freeze = \"Hyper-p\": not a key"),
            "{e}"
        );
        let e = parse("[keys]\nfreeze = []\n", "keys.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "keys.toml:2: freeze has no key; give one, e.g. freeze = \"p\""
        );
        let e = parse("[keys]\nfreeze = 3\n", "keys.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("keys.toml: TOML parse error at line 2"),
            "{e}"
        );
    }

    #[test]
    fn no_file_is_the_shipped_keys_and_an_unreadable_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let map = load(dir.path()).unwrap();
        assert_eq!(map.bindings().len(), BINDINGS.len());
        std::fs::create_dir(dir.path().join(KEYS_FILE)).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot read ") && e.contains(KEYS_FILE),
            "{e}"
        );
    }
}
