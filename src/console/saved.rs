//! The commands whose choices the config dir keeps (`settings`; the runner writes the files):
//! `:save NAME` stores the applied filter under NAME in `filters.toml`, `:filters` opens a
//! menu of the saved ones and choosing one applies it (`:filters NAME` at once; an applied
//! filter joins the `/` history, as if typed); `:columns NAME…` picks and orders the current
//! view's columns in `columns.toml`.

use super::app::{AppState, Effect, Menu, MenuPurpose};
use super::clipboard::Copyable;
use super::history;
use super::settings::{COLUMNS_FILE, FILTERS_FILE, FilterName};
use super::views::columns;

impl AppState {
    /// `:save NAME`.
    pub(super) fn save_filter(&mut self, name: &str) {
        let name = match FilterName::parse(name) {
            Ok(n) => n,
            Err(e) => {
                self.message = Some(Err(format!(":save {name}: {e}")));
                return;
            }
        };
        if self.filter.is_empty() {
            self.message = Some(Err(
                ":save stores the applied filter, and there is none: type one after / first".into(),
            ));
            return;
        }
        let Some(dir) = &self.config_dir else {
            self.message = Some(Err(
                ":save needs a config dir, and this system has none (is HOME set?)".into(),
            ));
            return;
        };
        let path = dir.join(FILTERS_FILE);
        let text = self.filter.text().to_string();
        let replaced = self.saved_filters.get(name.as_str()).is_some();
        self.saved_filters.insert(name.clone(), &text);
        self.effects.push(Effect::WriteConfig {
            done: format!(
                "{} filter {} = {text:?} in {}",
                if replaced { "replaced" } else { "saved" },
                name.as_str(),
                path.display()
            ),
            path,
            contents: self.saved_filters.render(),
        });
        self.message = Some(Ok(format!("saving filter {} …", name.as_str())));
    }

    /// `:filters [NAME]`: apply NAME, or open the menu of saved filters.
    pub(super) fn named_filters(&mut self, name: &str) {
        if self.saved_filters.is_empty() {
            self.message = Some(Err(
                "no saved filters yet: apply one with /, then :save NAME".into(),
            ));
            return;
        }
        if !name.is_empty() {
            match self.saved_filters.get(name) {
                Some(text) => {
                    let item = Copyable {
                        what: name.to_string(),
                        text: text.to_string(),
                    };
                    self.apply_named_filter(&item);
                }
                None => {
                    let names: Vec<&str> = self.saved_filters.iter().map(|(n, _)| n).collect();
                    self.message = Some(Err(format!(
                        "no saved filter {name:?}; saved: {}",
                        names.join(" ")
                    )));
                }
            }
            return;
        }
        let items: Vec<Copyable> = self
            .saved_filters
            .iter()
            .map(|(name, text)| Copyable {
                what: name.to_string(),
                text: text.to_string(),
            })
            .collect();
        // Open on the filter applied now, if it is one of them.
        let selected = items
            .iter()
            .position(|i| i.text == self.filter.text())
            .unwrap_or(0);
        self.menu = Some(Menu {
            purpose: MenuPurpose::ApplyFilter,
            items,
            selected,
        });
    }

    /// Apply a saved filter (`item.what` its name, `item.text` the filter).
    pub(super) fn apply_named_filter(&mut self, item: &Copyable) {
        self.set_filter(&item.text);
        history::push(&mut self.filter_history, &item.text);
        self.message = Some(Ok(format!("filter {} = {:?}", item.what, item.text)));
    }

    /// `:columns [NAME…|reset]`: say the current view's columns, choose them, or go back to
    /// the shipped ones.
    pub(super) fn choose_columns(&mut self, arg: &str) {
        let view = self.view;
        let all = columns::names(self, view);
        let shown: Vec<String> = match self.columns.get(view) {
            Some(c) => c.to_vec(),
            None => all.clone(),
        };
        if arg.is_empty() {
            let hidden: Vec<&str> = all
                .iter()
                .filter(|n| !shown.contains(n))
                .map(String::as_str)
                .collect();
            self.message = Some(Ok(format!(
                "{} columns: {}{}; :columns NAME… to choose, :columns reset",
                view.title(),
                shown.join(" "),
                if hidden.is_empty() {
                    String::new()
                } else {
                    format!(" (hidden: {})", hidden.join(" "))
                }
            )));
            return;
        }
        let choice = if arg == "reset" {
            None
        } else {
            let mut names: Vec<String> = Vec::new();
            for n in arg.split_whitespace() {
                let n = n.to_lowercase();
                if !all.contains(&n) {
                    self.message = Some(Err(format!(
                        "{} has no column {n:?}; its columns: {}",
                        view.title(),
                        all.join(" ")
                    )));
                    return;
                }
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            Some(names)
        };
        let said = match &choice {
            Some(n) => format!("{} shows {}", view.title(), n.join(" ")),
            None => format!("{} shows its columns as shipped", view.title()),
        };
        self.columns.set(view, choice);
        match &self.config_dir {
            Some(dir) => {
                let path = dir.join(COLUMNS_FILE);
                self.effects.push(Effect::WriteConfig {
                    done: format!("{said} (kept in {})", path.display()),
                    path,
                    contents: self.columns.render(),
                });
                self.message = Some(Ok(said));
            }
            None => {
                self.message = Some(Ok(format!(
                    "{said}, for this session (no config dir to keep it in)"
                )));
            }
        }
    }
}
