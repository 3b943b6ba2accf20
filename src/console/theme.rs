//! Console themes: TOML files with a `[colors]` table. Four ship inside the binary (`dark`, the
//! default, `light`, `high-contrast`, `mono`); user themes live in `<config dir>/themes/NAME.toml`
//! (a user file with a built-in's name overrides it) or at any path. A theme may set only some
//! colours: the rest come from `extends` (default `dark`). Colours are ratatui names (`red`,
//! `lightblue`, `darkgray`, `reset` …), an index `0`–`255`, or `#rrggbb`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use toml::Spanned;

use super::alerts::Severity;
use super::model::CredentialStatus;

/// The shipped themes, embedded in the binary.
pub const BUILTIN: [(&str, &str); 4] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("mono", include_str!("../../themes/mono.toml")),
];

/// The theme used when nothing is asked for.
pub const DEFAULT_THEME: &str = "dark";

/// A theme that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error(
        "{file}:{line}: colors.{key} = {value:?} is not a colour; use a name (red, lightblue, darkgray, reset …), an index 0-255, or \"#rrggbb\""
    )]
    BadColour {
        file: String,
        line: usize,
        key: String,
        value: String,
    },
    #[error("{file}: {source}")]
    Parse {
        file: String,
        source: toml::de::Error,
    },
    #[error("cannot read theme file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "unknown theme {name:?}: built-in themes are dark, light, high-contrast, mono; user themes go in {dir}/NAME.toml, or pass a path"
    )]
    Unknown { name: String, dir: String },
    #[error(
        "{file}: extends = {base:?} is not a built-in theme (dark, light, high-contrast, mono)"
    )]
    UnknownBase { file: String, base: String },
}

macro_rules! palette {
    ($($key:ident: $doc:literal),* $(,)?) => {
        /// Every colour the console uses, by meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct Palette { $(#[doc = $doc] pub $key: Color,)* }

        impl Palette {
            /// All `reset`: the terminal's own colours.
            pub const RESET: Palette = Palette { $($key: Color::Reset,)* };
            /// The key names, as written in theme files.
            pub const KEYS: &[&str] = &[$(stringify!($key)),*];
        }

        /// `[colors]` as written: every key optional.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ColorOverrides { $($key: Option<Spanned<String>>,)* }

        impl ColorOverrides {
            fn apply(&self, p: &mut Palette, file: &str, text: &str) -> Result<(), ThemeError> {
                $(if let Some(v) = &self.$key {
                    p.$key = parse_colour(v, stringify!($key), file, text)?;
                })*
                Ok(())
            }

            #[cfg(test)]
            fn missing(&self) -> Vec<&'static str> {
                let mut out = Vec::new();
                $(if self.$key.is_none() { out.push(stringify!($key)); })*
                out
            }
        }
    };
}

palette! {
    fg: "Normal text.",
    bg: "Background (`reset` keeps the terminal's).",
    muted: "Secondary text: timestamps, hints, revoked rows.",
    accent: "Keys in the footer, active tab marker.",
    border: "Block borders.",
    title: "Block titles.",
    header_fg: "Header bar text.",
    header_bg: "Header bar background.",
    badge_fg: "READ-ONLY badge text.",
    badge_bg: "READ-ONLY badge background.",
    selection_fg: "Selected row text.",
    selection_bg: "Selected row background.",
    ok: "Status ok.",
    warn: "Status warn (expires within 30 days), warning alerts.",
    critical: "Status critical (within 7 days) and expired, critical alerts.",
    info: "Info alerts.",
    allowed: "Allowed requests.",
    denied: "Denied requests.",
    method_token: "Service-token traffic.",
    method_mtls: "mTLS traffic.",
    method_none: "Traffic without a credential.",
}

/// A resolved theme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Theme {
    pub name: String,
    pub colors: Palette,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: Option<String>,
    extends: Option<String>,
    #[serde(default)]
    colors: ColorOverrides,
}

impl Default for Theme {
    fn default() -> Self {
        // The shipped dark theme is tested to parse; all-`reset` is the safe fallback.
        Theme::builtin(DEFAULT_THEME)
            .and_then(Result::ok)
            .unwrap_or(Theme {
                name: DEFAULT_THEME.into(),
                colors: Palette::RESET,
            })
    }
}

impl Theme {
    /// A shipped theme by name.
    pub fn builtin(name: &str) -> Option<Result<Theme, ThemeError>> {
        let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name)?;
        let file = format!("themes/{name}.toml (built in)");
        // Only the shipped dark theme starts from nothing; it must set every key (tested).
        let base = if name == DEFAULT_THEME {
            Some(Palette::RESET)
        } else {
            None
        };
        Some(Theme::parse_over(text, &file, base))
    }

    /// Parse theme TOML; `file` names it in errors. Unset keys come from `extends` (default dark).
    pub fn parse(text: &str, file: &str) -> Result<Theme, ThemeError> {
        Theme::parse_over(text, file, None)
    }

    fn parse_over(text: &str, file: &str, base: Option<Palette>) -> Result<Theme, ThemeError> {
        let tf: ThemeFile = toml::from_str(text).map_err(|source| ThemeError::Parse {
            file: file.into(),
            source,
        })?;
        let mut colors = match (tf.extends.as_deref(), base) {
            (None, Some(base)) => base,
            (None, None) => Theme::default().colors,
            // Built-ins extend dark, and dark extends nothing, so this recursion ends.
            (Some(name), _) => match Theme::builtin(name) {
                Some(parent) => parent?.colors,
                None => {
                    return Err(ThemeError::UnknownBase {
                        file: file.into(),
                        base: name.into(),
                    });
                }
            },
        };
        tf.colors.apply(&mut colors, file, text)?;
        let name = tf.name.unwrap_or_else(|| file.to_string());
        Ok(Theme { name, colors })
    }

    /// Read a theme file.
    pub fn from_file(path: &Path) -> Result<Theme, ThemeError> {
        let text =
            crate::input::read_to_string(path, crate::input::THEME_FILE).map_err(|source| {
                ThemeError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        Theme::parse(&text, &path.display().to_string())
    }

    /// `spec` is a path (contains `/` or ends in `.toml`) or a name: first
    /// `<user_dir>/NAME.toml`, then the built-ins.
    pub fn load(spec: &str, user_dir: Option<&Path>) -> Result<Theme, ThemeError> {
        if spec.contains(std::path::MAIN_SEPARATOR) || spec.contains('/') || spec.ends_with(".toml")
        {
            return Theme::from_file(Path::new(spec));
        }
        if let Some(dir) = user_dir {
            let p = dir.join(format!("{spec}.toml"));
            if p.is_file() {
                return Theme::from_file(&p);
            }
        }
        Theme::builtin(spec).unwrap_or_else(|| {
            Err(ThemeError::Unknown {
                name: spec.into(),
                dir: user_dir
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| "<config dir>/themes".into()),
            })
        })
    }

    /// The theme to use: the one asked for (`--theme` / `BOTGATE_THEME`), else `mono` when
    /// `NO_COLOR` is set, else `dark`. An explicit choice beats `NO_COLOR` (no-color.org).
    pub fn resolve(
        requested: Option<&str>,
        no_color: bool,
        user_dir: Option<&Path>,
    ) -> Result<Theme, ThemeError> {
        match requested.map(str::trim).filter(|s| !s.is_empty()) {
            Some(spec) => Theme::load(spec, user_dir),
            None if no_color => Theme::load("mono", user_dir),
            None => Theme::load(DEFAULT_THEME, user_dir),
        }
    }

    pub fn base(&self) -> Style {
        Style::new().fg(self.colors.fg).bg(self.colors.bg)
    }
    pub fn muted(&self) -> Style {
        Style::new().fg(self.colors.muted)
    }
    pub fn accent(&self) -> Style {
        Style::new()
            .fg(self.colors.accent)
            .add_modifier(Modifier::BOLD)
    }
    pub fn border(&self) -> Style {
        Style::new().fg(self.colors.border)
    }
    pub fn title(&self) -> Style {
        Style::new()
            .fg(self.colors.title)
            .add_modifier(Modifier::BOLD)
    }
    pub fn header(&self) -> Style {
        Style::new()
            .fg(self.colors.header_fg)
            .bg(self.colors.header_bg)
    }
    pub fn badge(&self) -> Style {
        Style::new()
            .fg(self.colors.badge_fg)
            .bg(self.colors.badge_bg)
            .add_modifier(Modifier::BOLD)
    }
    /// The selected row; reverse video when the theme has no selection colours (mono).
    pub fn selection(&self) -> Style {
        let s = Style::new()
            .fg(self.colors.selection_fg)
            .bg(self.colors.selection_bg)
            .add_modifier(Modifier::BOLD);
        if self.colors.selection_bg == Color::Reset {
            s.add_modifier(Modifier::REVERSED)
        } else {
            s
        }
    }
    /// Colour for a credential status; expired is the critical colour, bold.
    pub fn status(&self, s: CredentialStatus) -> Style {
        match s {
            CredentialStatus::Ok => Style::new().fg(self.colors.ok),
            CredentialStatus::Warn => Style::new().fg(self.colors.warn),
            CredentialStatus::Critical => Style::new().fg(self.colors.critical),
            CredentialStatus::Expired => Style::new()
                .fg(self.colors.critical)
                .add_modifier(Modifier::BOLD),
            CredentialStatus::Revoked | CredentialStatus::Disabled => {
                Style::new().fg(self.colors.muted)
            }
        }
    }
    pub fn severity(&self, s: Severity) -> Style {
        match s {
            Severity::Critical => Style::new()
                .fg(self.colors.critical)
                .add_modifier(Modifier::BOLD),
            Severity::Warning => Style::new().fg(self.colors.warn),
            Severity::Info => Style::new().fg(self.colors.info),
        }
    }
    pub fn decision(&self, allowed: bool) -> Style {
        Style::new().fg(if allowed {
            self.colors.allowed
        } else {
            self.colors.denied
        })
    }
    /// Colour for a connection method, indexed like `aggregate::METHODS`.
    pub fn method(&self, i: usize) -> Style {
        Style::new().fg([
            self.colors.method_token,
            self.colors.method_mtls,
            // OIDC workloads: the info colour (themes have no method colour of their own for it).
            self.colors.info,
            self.colors.method_none,
        ][i.min(3)])
    }
}

/// A theme the console can switch to with `:theme NAME`: the parsed theme, or why its file
/// does not parse (said when it is chosen).
pub type ThemeChoice = (String, Result<Theme, String>);

/// Every theme `:theme` offers: the shipped ones, then `<user_dir>/*.toml` by file stem (a user
/// theme with a shipped name replaces it), sorted by name. Reads the directory once, at start.
pub fn catalogue(user_dir: Option<&Path>) -> Vec<ThemeChoice> {
    let mut out: Vec<ThemeChoice> = BUILTIN
        .iter()
        .filter_map(|(name, _)| {
            let t = Theme::builtin(name)?.map_err(|e| e.to_string());
            Some((name.to_string(), t))
        })
        .collect();
    if let Some(entries) = user_dir.and_then(|d| std::fs::read_dir(d).ok()) {
        for entry in entries.flatten() {
            let path = entry.path();
            let stem = match (path.extension(), path.file_stem()) {
                (Some(ext), Some(stem)) if ext == "toml" => stem.to_string_lossy().to_string(),
                _ => continue,
            };
            let theme = Theme::from_file(&path).map_err(|e| e.to_string());
            out.retain(|(n, _)| *n != stem);
            out.push((stem, theme));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `<config dir>/themes`, where user themes live.
pub fn user_themes_dir() -> Option<PathBuf> {
    super::settings::config_dir().map(|d| d.join("themes"))
}

fn parse_colour(
    v: &Spanned<String>,
    key: &str,
    file: &str,
    text: &str,
) -> Result<Color, ThemeError> {
    let raw = v.get_ref().trim();
    let ok = if raw.starts_with('#') {
        raw.len() == 7
    } else {
        true
    };
    match Color::from_str(raw) {
        Ok(c) if ok => Ok(c),
        _ => Err(ThemeError::BadColour {
            file: file.into(),
            line: text
                .get(..v.span().start)
                .map_or(1, |before| before.matches('\n').count() + 1),
            key: key.into(),
            value: v.get_ref().clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_theme_parses_and_dark_sets_every_key() {
        for (name, text) in BUILTIN {
            let t = Theme::builtin(name)
                .unwrap()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(t.name, name);
            let tf: ThemeFile = toml::from_str(text).unwrap();
            assert!(
                tf.colors.missing().is_empty(),
                "{name} misses {:?}",
                tf.colors.missing()
            );
        }
        assert_eq!(Theme::default().colors.critical, Color::LightRed);
        assert_eq!(
            Theme::builtin("mono").unwrap().unwrap().colors,
            Palette::RESET
        );
        assert_eq!(Palette::KEYS.len(), 21);
    }

    #[test]
    fn catalogue_lists_shipped_and_user_themes_and_keeps_bad_ones_as_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ocean.toml"), "[colors]\nbg = \"blue\"\n").unwrap();
        std::fs::write(
            dir.path().join("broken.toml"),
            "[colors]\nbg = \"blurple\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a theme").unwrap();
        let names: Vec<_> = catalogue(Some(dir.path()))
            .into_iter()
            .map(|(n, t)| (n, t.is_ok()))
            .collect();
        assert_eq!(
            names,
            [
                ("broken".to_string(), false),
                ("dark".into(), true),
                ("high-contrast".into(), true),
                ("light".into(), true),
                ("mono".into(), true),
                ("ocean".into(), true),
            ]
        );
        assert_eq!(catalogue(None).len(), BUILTIN.len());
    }

    #[test]
    fn bad_colour_names_key_file_and_line() {
        let text = "name = \"mine\"\n[colors]\nok = \"green\"\nwarn = \"purplish\"\n";
        let err = Theme::parse(text, "/home/u/.config/botgate/themes/mine.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mine.toml:4"), "{err}");
        assert!(err.contains("colors.warn"), "{err}");
        assert!(err.contains("purplish"), "{err}");
        let err = Theme::parse("[colors]\nok = \"#12345\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("colors.ok"), "{err}");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = Theme::parse("[colors]\nwarning = \"red\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("warning"), "{err}");
    }

    #[test]
    fn partial_override_keeps_the_base() {
        let t = Theme::parse(
            "extends = \"light\"\n[colors]\nwarn = \"#ff8800\"\n",
            "t.toml",
        )
        .unwrap();
        let light = Theme::builtin("light").unwrap().unwrap();
        assert_eq!(t.colors.warn, Color::Rgb(0xff, 0x88, 0));
        assert_eq!(t.colors.critical, light.colors.critical);
        let t = Theme::parse("[colors]\nok = \"blue\"\n", "t.toml").unwrap();
        assert_eq!(t.colors.warn, Theme::default().colors.warn);
    }

    #[test]
    fn resolve_order_user_dir_then_builtin_no_color_mono() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dark.toml"), "[colors]\nok = \"blue\"\n").unwrap();
        assert_eq!(
            Theme::resolve(None, false, Some(dir.path()))
                .unwrap()
                .colors
                .ok,
            Color::Blue
        );
        assert_eq!(Theme::resolve(None, true, None).unwrap().name, "mono");
        assert_eq!(
            Theme::resolve(Some("light"), true, None).unwrap().name,
            "light"
        );
        let err = Theme::resolve(Some("solarized"), false, Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("solarized") && err.contains("high-contrast"),
            "{err}"
        );
        let p = dir.path().join("x.toml");
        std::fs::write(&p, "extends = \"nope\"\n").unwrap();
        assert!(
            Theme::load(p.to_str().unwrap(), None)
                .unwrap_err()
                .to_string()
                .contains("nope")
        );
    }
}
