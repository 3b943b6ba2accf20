//! The split pane under the Tokens and Certs tables: when the terminal is tall enough for the
//! table's rows and at least `MIN_HEIGHT` more lines, the selected credential's details (the
//! same lines as its `Enter` window, `AppState::pane`) fill the space the table leaves empty.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};

use crate::console::app::AppState;

use super::widgets;

/// Lines the pane needs at least, borders included.
pub const MIN_HEIGHT: u16 = 12;

/// The table's area and, when there is room for `rows` table rows and the pane, the pane's
/// area below it (none while a window is open over the view).
pub fn split(area: Rect, rows: usize, s: &AppState) -> (Rect, Option<Rect>) {
    let table = u16::try_from(rows).unwrap_or(u16::MAX).saturating_add(3);
    if s.overlay.is_some() || s.pane.is_none() || area.height < table.saturating_add(MIN_HEIGHT) {
        return (area, None);
    }
    let [table, pane] =
        Layout::vertical([Constraint::Length(table), Constraint::Min(0)]).areas(area);
    (table, Some(pane))
}

/// Draw the selected credential's details into `area`.
pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let Some((title, lines)) = &s.pane else {
        return;
    };
    let p = widgets::details(&s.theme, format!(" {title} · Enter opens "), lines);
    frame.render_widget(p, area);
}
