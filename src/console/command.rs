//! The `:` command line (k9s-like): `:` opens a prompt in the footer, Enter runs, Esc cancels,
//! Tab completes, ↑/↓ walk the history. `COMMANDS` is the one list: parsing, completion, the `?`
//! help and the "did you mean" suggestions all read it. A command does what its key does by
//! calling the same `AppState` paths (`perform` of a keymap `Action`, `show_view`, the filter,
//! the rotation wizard); only `:theme` and `:filter TEXT` have no single key.

use super::actions;
use super::app::{AppState, Effect, ViewId};
use super::export;
use super::history::{self, Walk};
use super::keymap::{Action, Context, Keymap, key_name};
use super::rows;

/// What a command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    View(ViewId),
    Theme,
    Filter,
    NoFilter,
    Freeze,
    Export,
    SaveFilter,
    Filters,
    Columns,
    Help,
    Quit,
    Rotate,
}

/// One command: its name, short aliases, argument and help line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// The argument, e.g. `NAME` (None: takes none).
    pub arg: Option<&'static str>,
    pub help: &'static str,
    /// It changes something: hidden from completion and help, and refused, when read-only.
    pub changes: bool,
    /// The view action that does the same, whose keys the help names (as rebound).
    pub key: Option<Action>,
    kind: Kind,
}

const fn view(name: &'static str, aliases: &'static [&'static str], v: ViewId) -> CommandSpec {
    CommandSpec {
        name,
        aliases,
        arg: None,
        help: "",
        changes: false,
        key: None,
        kind: Kind::View(v),
    }
}

/// Every command of the console.
pub const COMMANDS: &[CommandSpec] = &[
    view("traffic", &["tr", "t"], ViewId::Traffic),
    view("tokens", &["tok", "tk"], ViewId::Tokens),
    view("certs", &["cert", "crt"], ViewId::Certs),
    view("alerts", &["al", "alert"], ViewId::Alerts),
    view("policies", &["pol", "policy"], ViewId::Policies),
    view("rotations", &["rot", "rotation"], ViewId::Rotations),
    view("log", &["l", "logs"], ViewId::Log),
    view("issuers", &["iss", "oidc"], ViewId::Issuers),
    CommandSpec {
        name: "theme",
        aliases: &[],
        arg: Some("NAME"),
        help: "switch the theme: shipped (dark light high-contrast mono) or the config dir's",
        changes: false,
        key: None,
        kind: Kind::Theme,
    },
    CommandSpec {
        name: "filter",
        aliases: &["f"],
        arg: Some("TEXT"),
        help: "set the filter, as typed after /",
        changes: false,
        key: None,
        kind: Kind::Filter,
    },
    CommandSpec {
        name: "nofilter",
        aliases: &["nof"],
        arg: None,
        help: "clear the filter",
        changes: false,
        key: Some(Action::Back),
        kind: Kind::NoFilter,
    },
    CommandSpec {
        name: "freeze",
        aliases: &["fr"],
        arg: None,
        help: "freeze the views, or unfreeze and jump to live",
        changes: false,
        key: Some(Action::ToggleFreeze),
        kind: Kind::Freeze,
    },
    CommandSpec {
        name: "export",
        aliases: &["exp", "w"],
        arg: Some("FILE"),
        help: "write what this view shows (filter, sort, time window) to FILE.csv or FILE.json",
        changes: false,
        key: None,
        kind: Kind::Export,
    },
    CommandSpec {
        name: "save",
        aliases: &[],
        arg: Some("NAME"),
        help: "save the current filter as NAME (in the config dir's filters.toml)",
        changes: false,
        key: None,
        kind: Kind::SaveFilter,
    },
    CommandSpec {
        name: "filters",
        aliases: &["fs"],
        arg: Some("[NAME]"),
        help: "the saved filters: choose one to apply, or apply NAME",
        changes: false,
        key: None,
        kind: Kind::Filters,
    },
    CommandSpec {
        name: "columns",
        aliases: &["cols"],
        arg: Some("[NAME…|reset]"),
        help: "show these columns of this view's table, in this order (Tab completes; reset: as shipped)",
        changes: false,
        key: None,
        kind: Kind::Columns,
    },
    CommandSpec {
        name: "help",
        aliases: &["h"],
        arg: None,
        help: "this help",
        changes: false,
        key: Some(Action::ToggleHelp),
        kind: Kind::Help,
    },
    CommandSpec {
        name: "quit",
        aliases: &["q", "q!"],
        arg: None,
        help: "quit",
        changes: false,
        key: Some(Action::Quit),
        kind: Kind::Quit,
    },
    CommandSpec {
        name: "rotate",
        aliases: &[],
        arg: Some("NAME [--new-cn NEWCN]"),
        help: "start a rotation of the token or certificate NAME; a certificate to a new CN with --new-cn",
        changes: true,
        key: Some(Action::StartRotation),
        kind: Kind::Rotate,
    },
];

/// A command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    pub spec: &'static CommandSpec,
    /// The argument with surrounding spaces removed (empty: none given).
    pub arg: &'a str,
}

/// Why a command line cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("type a command after : (:help lists them)")]
    Empty,
    #[error("unknown command :{name}{}", suggest(suggestions))]
    Unknown {
        name: String,
        suggestions: Vec<&'static str>,
    },
    #[error(":{name} needs {arg}, e.g. :{name} {example}")]
    MissingArg {
        name: &'static str,
        arg: &'static str,
        example: &'static str,
    },
    #[error(":{name} takes no argument (got {arg:?})")]
    UnexpectedArg { name: &'static str, arg: String },
}

fn suggest(s: &[&str]) -> String {
    match s {
        [] => "; :help lists the commands".into(),
        [one] => format!("; did you mean :{one}?"),
        many => {
            let v: Vec<String> = many.iter().map(|n| format!(":{n}")).collect();
            format!("; did you mean one of {}?", v.join(" "))
        }
    }
}

/// The commands usable in this console (read-only drops those that change something).
fn available(read_only: bool) -> impl Iterator<Item = &'static CommandSpec> {
    COMMANDS.iter().filter(move |c| !(read_only && c.changes))
}

fn find(word: &str) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|c| c.name == word || c.aliases.contains(&word))
}

/// Parse `line` (what follows the `:`). A read-only console does not know `:rotate` as a
/// command to suggest, but parses it so the refusal can say why.
pub fn parse(line: &str, read_only: bool) -> Result<Command<'_>, CommandError> {
    let line = line.trim();
    let (word, arg) = match line.split_once(char::is_whitespace) {
        Some((w, a)) => (w, a.trim()),
        None => (line, ""),
    };
    if word.is_empty() {
        return Err(CommandError::Empty);
    }
    let word_lc = word.to_ascii_lowercase();
    let Some(spec) = find(&word_lc) else {
        return Err(CommandError::Unknown {
            name: word.to_string(),
            suggestions: close_matches(&word_lc, read_only),
        });
    };
    match (spec.arg, arg.is_empty()) {
        // `:theme` and `:filters` without an argument list what there is.
        (Some(a), true) if !matches!(spec.kind, Kind::Theme | Kind::Filters | Kind::Columns) => {
            Err(CommandError::MissingArg {
                name: spec.name,
                arg: a,
                example: match spec.kind {
                    Kind::Filter => "deny country:RU",
                    Kind::Export => "denied.csv",
                    Kind::SaveFilter => "denied-ru",
                    _ => "ci-deploy-prod",
                },
            })
        }
        (None, false) => Err(CommandError::UnexpectedArg {
            name: spec.name,
            arg: arg.to_string(),
        }),
        _ => Ok(Command { spec, arg }),
    }
}

/// Command names close to `word`: sharing its first letters, or within two edits.
pub fn close_matches(word: &str, read_only: bool) -> Vec<&'static str> {
    let mut scored: Vec<(usize, &'static str)> = available(read_only)
        .filter_map(|c| {
            let best = std::iter::once(c.name)
                .chain(c.aliases.iter().copied())
                .map(|n| {
                    if word.len() >= 2 && n.starts_with(word) {
                        0
                    } else {
                        edit_distance(word, n)
                    }
                })
                .min()
                .unwrap_or(usize::MAX);
            (best <= 2).then_some((best, c.name))
        })
        .collect();
    scored.sort();
    scored.into_iter().map(|(_, n)| n).take(3).collect()
}

/// Levenshtein distance by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Complete `line`: the command name, or the argument of `:theme` (theme names) and `:rotate`
/// (token and certificate names). Returns the new line and, when several candidates remain,
/// the candidates (the line then holds their longest common prefix).
pub fn complete(s: &AppState, line: &str) -> (String, Vec<String>) {
    let read_only = s.header.read_only;
    let (head, word, candidates): (String, &str, Vec<String>) =
        match line.split_once(char::is_whitespace) {
            None => (
                String::new(),
                line,
                available(read_only).map(|c| c.name.to_string()).collect(),
            ),
            Some((cmd, rest))
                if find(&cmd.to_ascii_lowercase()).map(|c| c.kind) == Some(Kind::Columns) =>
            {
                // Several names: complete the last one.
                let (done, word) = rest.rsplit_once(' ').unwrap_or(("", rest));
                let mut values = super::views::columns::names(s, s.view);
                values.push("reset".into());
                let head = format!(
                    "{cmd} {}",
                    if done.trim().is_empty() {
                        String::new()
                    } else {
                        format!("{} ", done.trim())
                    }
                );
                (head, word, values)
            }
            Some((cmd, rest)) => {
                let word = rest.trim_start();
                let values = match find(&cmd.to_ascii_lowercase()).map(|c| c.kind) {
                    Some(Kind::Theme) => s.themes.iter().map(|(n, _)| n.clone()).collect(),
                    Some(Kind::Filters | Kind::SaveFilter) => {
                        s.saved_filters.iter().map(|(n, _)| n.to_string()).collect()
                    }
                    Some(Kind::Rotate) if !read_only => {
                        let mut v: Vec<String> = s.tokens.iter().map(|t| t.name.clone()).collect();
                        v.extend(s.certs.iter().map(|c| c.common_name.clone()));
                        v.sort();
                        v.dedup();
                        v
                    }
                    _ => Vec::new(),
                };
                (format!("{cmd} "), word, values)
            }
        };
    let matches: Vec<String> = candidates
        .into_iter()
        .filter(|c| c.starts_with(word))
        .collect();
    match matches.as_slice() {
        [] => (line.to_string(), Vec::new()),
        [one] => {
            let takes_arg = head.is_empty() && find(one).is_some_and(|c| c.arg.is_some());
            let space = if takes_arg { " " } else { "" };
            (format!("{head}{one}{space}"), Vec::new())
        }
        many => {
            let prefix = common_prefix(many);
            (format!("{head}{prefix}"), many.to_vec())
        }
    }
}

fn common_prefix(v: &[String]) -> String {
    let first = v.first().map(String::as_str).unwrap_or("");
    let mut end = first.len();
    for s in &v[1..] {
        end = end.min(
            first
                .char_indices()
                .zip(s.chars())
                .take_while(|((_, a), b)| a == b)
                .last()
                .map_or(0, |((i, a), _)| i + a.len_utf8()),
        );
    }
    first[..end].to_string()
}

/// The `?` help lines `(":name alias ARG", help)` for this console; a command that a key also
/// does names the key as `keymap` binds it.
pub fn help_lines(read_only: bool, keymap: &Keymap) -> Vec<(String, String)> {
    let views = || available(read_only).filter(|c| matches!(c.kind, Kind::View(_)));
    let names: Vec<&str> = views().map(|c| c.name).collect();
    let short: Vec<&str> = views().filter_map(|c| c.aliases.first().copied()).collect();
    let mut out = vec![
        (
            ":VIEW".to_string(),
            format!("switch view: {}", names.join(" ")),
        ),
        (String::new(), format!("or short: {}", short.join(" "))),
    ];
    out.extend(
        available(read_only)
            .filter(|c| !matches!(c.kind, Kind::View(_)))
            .map(|c| {
                let mut usage = format!(":{}", c.name);
                if let Some(a) = c.arg {
                    usage.push(' ');
                    usage.push_str(a);
                }
                let keys = c.key.and_then(|a| {
                    keymap
                        .bindings()
                        .iter()
                        .find(|b| b.binding.context == Context::Normal && b.binding.action == a)
                        .map(|b| b.keys.iter().map(key_name).collect::<Vec<_>>().join(" "))
                });
                let help = match keys {
                    Some(k) => format!("{} ({k})", c.help),
                    None => c.help.to_string(),
                };
                (usage, help)
            }),
    );
    out
}

/// The command line being typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandLine {
    pub input: String,
    /// Where ↑/↓ are in `AppState::command_history`.
    pub walk: Walk,
}

impl AppState {
    /// A key while the command line is open: `typed` is the character for text keys.
    pub(super) fn command_key(&mut self, action: Option<Action>, typed: Option<char>) {
        let Some(mut cl) = self.command.take() else {
            return;
        };
        match action {
            Some(Action::Cancel) => return,
            Some(Action::RunCommand) => {
                let line = cl.input.trim().to_string();
                history::push(&mut self.command_history, &line);
                self.run_command(&line);
                return;
            }
            Some(Action::Complete) => {
                let (line, candidates) = complete(self, &cl.input);
                cl.input = line;
                self.message = (!candidates.is_empty()).then(|| Ok(candidates.join("  ")));
            }
            Some(Action::HistoryPrev) => cl.walk.prev(&self.command_history, &mut cl.input),
            Some(Action::HistoryNext) => cl.walk.next(&self.command_history, &mut cl.input),
            Some(Action::DeleteChar) => {
                cl.input.pop();
            }
            _ => {
                if let Some(c) = typed {
                    cl.input.push(c);
                    cl.walk.edited();
                }
            }
        }
        self.command = Some(cl);
    }

    /// Run one command line; the outcome (or why not) is shown in the footer.
    pub fn run_command(&mut self, line: &str) {
        let cmd = match parse(line, self.header.read_only) {
            Ok(c) => c,
            Err(e) => {
                self.message = Some(Err(e.to_string()));
                return;
            }
        };
        let arg = cmd.arg;
        match cmd.spec.kind {
            Kind::View(v) => self.show_view(v),
            Kind::Help => self.perform(Action::ToggleHelp, None),
            Kind::Quit => self.perform(Action::Quit, None),
            Kind::NoFilter => self.perform(Action::Back, None),
            Kind::Freeze => self.perform(Action::ToggleFreeze, None),
            Kind::Export => self.export_view(arg),
            Kind::SaveFilter => self.save_filter(arg),
            Kind::Filters => self.named_filters(arg),
            Kind::Columns => self.choose_columns(arg),
            Kind::Filter => self.set_filter(arg),
            Kind::Theme => self.switch_theme(arg),
            Kind::Rotate => self.rotate_named(arg),
        }
    }

    /// Queue writing the current view's rows to `file` (CSV or JSON by its extension).
    fn export_view(&mut self, file: &str) {
        let path = std::path::PathBuf::from(file);
        let format = match export::Format::of(&path) {
            Ok(f) => f,
            Err(e) => {
                self.message = Some(Err(e.to_string()));
                return;
            }
        };
        let table = export::table(self, self.view);
        let n = table.rows.len();
        let done = format!(
            "exported {n} row{} of {} to {file}",
            if n == 1 { "" } else { "s" },
            self.view.title()
        );
        self.effects.push(Effect::WriteFile {
            path,
            contents: table.render(format),
            done,
        });
        self.message = Some(Ok(format!("writing {file} …")));
    }

    fn switch_theme(&mut self, name: &str) {
        let names: Vec<&str> = self.themes.iter().map(|(n, _)| n.as_str()).collect();
        if name.is_empty() {
            self.message = Some(Ok(format!(
                "theme {}; available: {}",
                self.theme.name,
                names.join(" ")
            )));
            return;
        }
        match self.themes.iter().find(|(n, _)| n == name) {
            Some((_, Ok(theme))) => {
                self.theme = theme.clone();
                self.message = Some(Ok(format!("theme {name}")));
            }
            Some((_, Err(e))) => self.message = Some(Err(format!("theme {name}: {e}"))),
            None => {
                self.message = Some(Err(format!(
                    "no theme {name:?}; available: {} (user themes go in the config dir's themes/)",
                    names.join(" ")
                )));
            }
        }
    }

    /// `:rotate NAME [--new-cn NEWCN]`: select NAME in the Tokens (or Certs) view and do what
    /// `r` does there; with `--new-cn`, rotate the certificate to that CN.
    fn rotate_named(&mut self, arg: &str) {
        if self.header.read_only {
            self.message = Some(Err(format!(":rotate is disabled: {}", actions::READ_ONLY)));
            return;
        }
        let (name, new_cn) = match arg.split_once("--new-cn") {
            Some((name, new_cn)) => (name.trim(), Some(new_cn.trim())),
            None => (arg.trim(), None),
        };
        if new_cn.is_some_and(|n| n.is_empty() || n.contains(char::is_whitespace)) {
            self.message = Some(Err(
                "--new-cn takes one name, e.g. :rotate device-0001.factory.corp --new-cn device-0001.plant2.corp".into(),
            ));
            return;
        }
        let found = rows::tokens(self)
            .iter()
            .position(|t| t.name == name)
            .map(|i| (ViewId::Tokens, i))
            .or_else(|| {
                rows::certs(self)
                    .iter()
                    .position(|c| c.common_name == name)
                    .map(|i| (ViewId::Certs, i))
            });
        let Some((view, index)) = found else {
            let hidden = self.tokens.iter().any(|t| t.name == name)
                || self.certs.iter().any(|c| c.common_name == name);
            self.message = Some(Err(if hidden {
                format!(
                    "{name} is hidden by the filter {:?}; :nofilter first",
                    self.filter.text()
                )
            } else {
                let mut names: Vec<&str> = self.tokens.iter().map(|t| t.name.as_str()).collect();
                names.extend(self.certs.iter().map(|c| c.common_name.as_str()));
                let mut close: Vec<(usize, &str)> = names
                    .into_iter()
                    .map(|n| (edit_distance(name, n), n))
                    .filter(|(d, _)| *d <= 3)
                    .collect();
                close.sort();
                match close.first() {
                    Some((_, n)) => {
                        format!("no token or certificate named {name}; did you mean {n}?")
                    }
                    None => format!("no token or certificate named {name} (Tab completes names)"),
                }
            }));
            return;
        };
        self.show_view(view);
        self.selected[view.index()] = index;
        match (new_cn, view) {
            (Some(_), ViewId::Tokens) => {
                self.message = Some(Err(format!(
                    "{name} is a token: --new-cn is for certificates (a token's new name is {name}-v2, -v3 …)"
                )));
            }
            (Some(new_cn), _) => {
                if let Some(c) = rows::certs(self).get(index) {
                    let (serial, cn) = (c.serial.clone(), c.common_name.clone());
                    self.start_cert_rotation(serial, cn, Some(new_cn.to_string()));
                }
            }
            (None, _) => self.perform(Action::StartRotation, None),
        }
    }
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
