//! Named filters as the console uses them: `:save NAME` stores the applied filter under NAME
//! (the runner writes `filters.toml` in the config dir, `settings`), `:filters` opens a menu of
//! the saved ones and choosing one applies it, `:filters NAME` applies NAME at once. An
//! applied filter joins the `/` history, as if typed.

use super::app::{AppState, Effect, Menu, MenuPurpose};
use super::clipboard::Copyable;
use super::history;
use super::settings::{FILTERS_FILE, FilterName};

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
}
