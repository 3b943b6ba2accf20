//! The console's own files in its config dir (`$XDG_CONFIG_HOME/botgate`, else
//! `~/.config/botgate` on Linux; user themes are in its `themes/`): named filters in
//! `filters.toml` and the columns chosen per view in `columns.toml` (key bindings:
//! `rebind`). They are read once at start, where a broken file is an error naming the
//! file and line, and written back whole by the runner (`app::Effect::WriteConfig`) when
//! `:save` changes them; the UI task never touches the disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::app::ViewId;

/// The file of named filters, in the config dir.
pub const FILTERS_FILE: &str = "filters.toml";

/// The console's config dir on this system, if it has one.
pub fn config_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("dev", "botgate", "botgate").map(|d| d.config_dir().into())
}

/// Why a file of the config dir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
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
    #[error(
        "{file}:{line}: no view {view:?}; the views are traffic tokens certs alerts policies rotations log"
    )]
    UnknownView {
        file: String,
        line: usize,
        view: String,
    },
    #[error("{file}:{line}: filter name {name:?}: {problem}")]
    BadFilterName {
        file: String,
        line: usize,
        name: String,
        problem: FilterNameError,
    },
}

/// Why a filter name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterNameError {
    #[error("give a name, e.g. :save denied-ru")]
    Empty,
    #[error("at most {MAX_NAME} characters")]
    TooLong,
    #[error("use letters, digits, '-', '_' and '.' only")]
    BadCharacter,
}

/// Characters a filter name may have at most.
const MAX_NAME: usize = 40;

/// A filter's name: 1–40 letters, digits, `-`, `_`, `.` (it is typed after `:filters`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FilterName(String);

impl FilterName {
    pub fn parse(text: &str) -> Result<Self, FilterNameError> {
        let text = text.trim();
        if text.is_empty() {
            Err(FilterNameError::Empty)
        } else if text.chars().count() > MAX_NAME {
            Err(FilterNameError::TooLong)
        } else if !text
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            Err(FilterNameError::BadCharacter)
        } else {
            Ok(Self(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Filters saved with `:save NAME`, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedFilters(BTreeMap<FilterName, String>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FiltersFile {
    #[serde(default)]
    filters: BTreeMap<String, toml::Spanned<String>>,
}

impl NamedFilters {
    /// Parse a `filters.toml`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, SettingsError> {
        let parsed: FiltersFile = toml::from_str(text).map_err(|e| SettingsError::Toml {
            file: file.into(),
            source: Box::new(e),
        })?;
        let mut out = BTreeMap::new();
        for (name, value) in parsed.filters {
            let name =
                FilterName::parse(&name).map_err(|problem| SettingsError::BadFilterName {
                    file: file.into(),
                    line: line_of(text, value.span().start),
                    name: name.clone(),
                    problem,
                })?;
            out.insert(name, value.into_inner());
        }
        Ok(Self(out))
    }

    /// Read `<dir>/filters.toml`; none saved when it does not exist.
    pub fn load(dir: &Path) -> Result<Self, SettingsError> {
        let path = dir.join(FILTERS_FILE);
        match read_settings_file(&path) {
            Ok(Some(text)) => Self::parse(&text, &path.display().to_string()),
            Ok(None) => Ok(Self::default()),
            Err(source) => Err(SettingsError::Read { path, source }),
        }
    }

    /// The file's text (what `load` reads back).
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# Named filters of botgate console: `:save NAME` adds the current filter, \
             `:filters` lists them.\n[filters]\n",
        );
        for (name, text) in &self.0 {
            let key = toml::Value::String(name.as_str().to_string());
            let value = toml::Value::String(text.clone());
            out.push_str(&format!("{key} = {value}\n"));
        }
        out
    }

    /// Save `text` as `name` (replacing a filter of that name).
    pub fn insert(&mut self, name: FilterName, text: &str) {
        self.0.insert(name, text.to_string());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, t)| t.as_str())
    }

    /// `(name, filter text)` by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, t)| (n.as_str(), t.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The file of column choices (`:columns`), in the config dir.
pub const COLUMNS_FILE: &str = "columns.toml";

/// The columns chosen per view with `:columns`: view name (`traffic`, `tokens` …) → column
/// names in the order shown. Names are checked against the view when chosen; a name the view
/// no longer has is skipped when drawing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnChoices(BTreeMap<String, Vec<String>>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnsFile {
    #[serde(default)]
    columns: BTreeMap<String, toml::Spanned<Vec<String>>>,
}

impl ColumnChoices {
    /// Parse a `columns.toml`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, SettingsError> {
        let parsed: ColumnsFile = toml::from_str(text).map_err(|e| SettingsError::Toml {
            file: file.into(),
            source: Box::new(e),
        })?;
        let mut out = BTreeMap::new();
        for (view, names) in parsed.columns {
            if !ViewId::ALL.iter().any(|v| view_key(*v) == view) {
                return Err(SettingsError::UnknownView {
                    file: file.into(),
                    line: line_of(text, names.span().start),
                    view,
                });
            }
            out.insert(view, names.into_inner());
        }
        Ok(Self(out))
    }

    /// Read `<dir>/columns.toml`; no choices when it does not exist.
    pub fn load(dir: &Path) -> Result<Self, SettingsError> {
        let path = dir.join(COLUMNS_FILE);
        match read_settings_file(&path) {
            Ok(Some(text)) => Self::parse(&text, &path.display().to_string()),
            Ok(None) => Ok(Self::default()),
            Err(source) => Err(SettingsError::Read { path, source }),
        }
    }

    /// The file's text (what `load` reads back).
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# Columns of botgate console's views (`:columns NAME…`), in the order shown.\n[columns]\n",
        );
        for (view, names) in &self.0 {
            let list = toml::Value::Array(names.iter().cloned().map(toml::Value::String).collect());
            out.push_str(&format!("{view} = {list}\n"));
        }
        out
    }

    /// The names chosen for `view`, if any.
    pub fn get(&self, view: ViewId) -> Option<&[String]> {
        self.0.get(view_key(view)).map(Vec::as_slice)
    }

    /// Choose `names` for `view` (None: back to the shipped columns).
    pub fn set(&mut self, view: ViewId, names: Option<Vec<String>>) {
        match names {
            Some(n) => self.0.insert(view_key(view).to_string(), n),
            None => self.0.remove(view_key(view)),
        };
    }
}

/// A view's key in `columns.toml`: its title in lower case.
fn view_key(v: ViewId) -> &'static str {
    match v {
        ViewId::Traffic => "traffic",
        ViewId::Tokens => "tokens",
        ViewId::Certs => "certs",
        ViewId::Alerts => "alerts",
        ViewId::Policies => "policies",
        ViewId::Rotations => "rotations",
        ViewId::Log => "log",
        ViewId::Issuers => "issuers",
    }
}

/// A settings file of the config dir, read up to its limit; `None` when there is none.
pub fn read_settings_file(path: &Path) -> std::io::Result<Option<String>> {
    match crate::input::read_to_string(path, crate::input::CONSOLE_SETTINGS_FILE) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_filters_round_trip_through_their_file() {
        let mut f = NamedFilters::default();
        f.insert(FilterName::parse("denied-ru").unwrap(), "deny country:RU");
        f.insert(FilterName::parse("quotes").unwrap(), r#"path:"/a b" \ x"#);
        let back = NamedFilters::parse(&f.render(), "filters.toml").unwrap();
        assert_eq!(back, f);
        assert_eq!(back.get("denied-ru"), Some("deny country:RU"));
        let names: Vec<&str> = back.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["denied-ru", "quotes"]);
    }

    #[test]
    fn filter_names_are_short_words() {
        assert_eq!(
            FilterName::parse(" ok.1_a-b ").unwrap().as_str(),
            "ok.1_a-b"
        );
        assert_eq!(FilterName::parse(""), Err(FilterNameError::Empty));
        assert_eq!(FilterName::parse("a b"), Err(FilterNameError::BadCharacter));
        assert_eq!(
            FilterName::parse(&"x".repeat(41)),
            Err(FilterNameError::TooLong)
        );
    }

    #[test]
    fn a_broken_filters_file_names_the_file_and_line() {
        let bad_name = "[filters]\nok = \"deny\"\n\"two words\" = \"allow\"\n";
        let e = NamedFilters::parse(bad_name, "/cfg/filters.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/cfg/filters.toml:3: filter name \"two words\": use letters, digits, '-', '_' and '.' only"
        );
        let not_text = "[filters]\nok = 3\n";
        let e = NamedFilters::parse(not_text, "/cfg/filters.toml").unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("/cfg/filters.toml: TOML parse error at line 2"),
            "{text}"
        );
        let unknown = "[filter]\n";
        let text = NamedFilters::parse(unknown, "f.toml")
            .unwrap_err()
            .to_string();
        assert!(text.contains("unknown field `filter`"), "{text}");
    }

    #[test]
    fn column_choices_round_trip_and_an_unknown_view_names_its_line() {
        let mut c = ColumnChoices::default();
        c.set(
            ViewId::Traffic,
            Some(vec!["identity".into(), "apps".into()]),
        );
        c.set(ViewId::Log, Some(vec!["time".into()]));
        let back = ColumnChoices::parse(&c.render(), "columns.toml").unwrap();
        assert_eq!(back, c);
        assert_eq!(back.get(ViewId::Traffic).unwrap(), ["identity", "apps"]);
        c.set(ViewId::Log, None);
        assert_eq!(c.get(ViewId::Log), None);
        let e = ColumnChoices::parse("[columns]\ntraffic = []\ntraffik = [\"a\"]\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml:3: no view \"traffik\""), "{e}");
    }

    #[test]
    fn a_missing_file_is_no_filters_and_an_unreadable_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(NamedFilters::load(dir.path()).unwrap().is_empty());
        std::fs::create_dir(dir.path().join(FILTERS_FILE)).unwrap();
        let e = NamedFilters::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot read ") && e.contains(FILTERS_FILE),
            "{e}"
        );
    }
}
