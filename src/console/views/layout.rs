//! Where things are on screen, computed by the same functions the draw pass uses, so the mouse
//! hit-test (`hit`) always agrees with what is drawn: the screen split (header, tabs, body,
//! footer), the tab labels, each view's table areas, and the first row shown of each table
//! (`widgets::window_offset`). Pure: no state is written while drawing.

use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::text::Span;

use crate::console::app::{AppState, ViewId};
use crate::console::rows;

use super::widgets::{first_row_y, visible_rows, window_offset};
use super::{MIN_HEIGHT, MIN_WIDTH, issuers, policies, rotations, timelines, traffic};

/// The four bands of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Screen {
    pub header: Rect,
    pub tabs: Rect,
    pub body: Rect,
    pub footer: Rect,
}

/// The screen bands in `area`, or `None` when the terminal is too small to draw the console.
pub fn screen(area: Rect) -> Option<Screen> {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        return None;
    }
    let [header, tabs, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    Some(Screen {
        header,
        tabs,
        body,
        footer,
    })
}

/// A tab's text, ` 2 Tokens `; tabs are drawn left to right separated by one space.
pub fn tab_label(v: ViewId) -> String {
    format!(" {} {} ", v.index() + 1, v.title())
}

/// The tab under column `x` of the tab line starting at `tabs.x`.
pub fn tab_at(tabs: Rect, x: u16) -> Option<ViewId> {
    let mut left = tabs.x;
    for v in ViewId::ALL {
        let w = Span::raw(tab_label(v)).width() as u16;
        if (left..left.saturating_add(w)).contains(&x) {
            return Some(v);
        }
        left = left.saturating_add(w + 1);
    }
    None
}

/// Which selection a table's rows stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableId {
    /// The view's own table: a click moves `AppState::selected[view]`.
    View(ViewId),
    /// The Traffic view's live tail (rows are Log view rows, newest first).
    Tail,
}

/// A table as drawn: its area (with borders), how many rows it has, and the first row shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableGeom {
    pub id: TableId,
    pub area: Rect,
    pub total: usize,
    pub offset: usize,
}

impl TableGeom {
    fn new(s: &AppState, id: TableId, area: Rect) -> Self {
        let (total, selected, scroll) = match id {
            TableId::View(v) => (
                rows::row_count(s, v),
                Some(s.selected[v.index()]),
                s.scroll[v.index()],
            ),
            TableId::Tail => (rows::log_len(s), None, 0),
        };
        let offset = window_offset(total, selected, scroll, visible_rows(area.height));
        Self {
            id,
            area,
            total,
            offset,
        }
    }

    /// The row index drawn at screen line `y` inside the table's borders, if any.
    pub fn row_at(&self, x: u16, y: u16) -> Option<usize> {
        let inner_x = self.area.x + 1..self.area.right().saturating_sub(1);
        let first = first_row_y(self.area);
        if !inner_x.contains(&x) || y < first {
            return None;
        }
        let line = usize::from(y - first);
        if line >= visible_rows(self.area.height) || first + (line as u16) >= self.area.bottom() - 1
        {
            return None;
        }
        let i = self.offset + line;
        (i < self.total).then_some(i)
    }
}

/// The tables of the current view in `body`.
pub fn tables(s: &AppState, body: Rect) -> Vec<TableGeom> {
    let v = s.view;
    match v {
        ViewId::Traffic => {
            let l = traffic::layout(body, s);
            vec![
                TableGeom::new(s, TableId::View(v), l.identities),
                TableGeom::new(s, TableId::Tail, l.tail),
            ]
        }
        ViewId::Policies => vec![TableGeom::new(
            s,
            TableId::View(v),
            policies::layout(body, s).1,
        )],
        ViewId::Rotations if s.rotations.is_empty() => Vec::new(),
        ViewId::Rotations => vec![TableGeom::new(
            s,
            TableId::View(v),
            rotations::layout(body, s).0,
        )],
        ViewId::Issuers if s.issuers.is_empty() => Vec::new(),
        ViewId::Issuers => vec![TableGeom::new(
            s,
            TableId::View(v),
            issuers::layout(body, s).0,
        )],
        ViewId::Tokens | ViewId::Certs | ViewId::Alerts | ViewId::Log => {
            vec![TableGeom::new(s, TableId::View(v), table_area(s, v, body))]
        }
    }
}

/// The first row shown of `view`'s table as it would be drawn now (the view need not be the
/// current one).
pub fn offset_of(s: &AppState, view: ViewId) -> usize {
    let Some(sc) = screen(Rect::new(0, 0, s.size.0, s.size.1)) else {
        return s.scroll[view.index()];
    };
    let area = match view {
        ViewId::Traffic => traffic::layout(sc.body, s).identities,
        ViewId::Policies => policies::layout(sc.body, s).1,
        ViewId::Rotations => rotations::layout(sc.body, s).0,
        ViewId::Issuers => issuers::layout(sc.body, s).0,
        _ => table_area(s, view, sc.body),
    };
    TableGeom::new(s, TableId::View(view), area).offset
}

/// The table of a view that draws one table over `body` (and a picture below when tall
/// enough: `timelines::split`).
fn table_area(s: &AppState, view: ViewId, body: Rect) -> Rect {
    let height = match view {
        ViewId::Tokens | ViewId::Certs => timelines::EXPIRY_HEIGHT,
        ViewId::Alerts => timelines::ALERTS_HEIGHT,
        _ => return body,
    };
    timelines::split(body, rows::row_count(s, view), height).0
}

/// Seconds the Traffic chart spans with no time window selected: what the width gives, as
/// drawn at the terminal's size (`[` and `]` step from here).
pub fn auto_window_secs(s: &AppState) -> i64 {
    let width = screen(Rect::new(0, 0, s.size.0, s.size.1))
        .map_or(MIN_WIDTH, |sc| traffic::layout(sc.body, s).rate.width);
    traffic::auto_secs(width, s)
}

/// What a click at a screen cell lands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    Tab(ViewId),
    Row { table: TableId, index: usize },
}

/// What is drawn at column `x`, line `y` of the terminal (`AppState::size`), if clickable.
pub fn hit(s: &AppState, x: u16, y: u16) -> Option<Hit> {
    let sc = screen(Rect::new(0, 0, s.size.0, s.size.1))?;
    let at = Position::new(x, y);
    if sc.tabs.contains(at) {
        return tab_at(sc.tabs, x).map(Hit::Tab);
    }
    if !sc.body.contains(at) {
        return None;
    }
    tables(s, sc.body).into_iter().find_map(|t| {
        t.area.contains(at).then_some(())?;
        t.row_at(x, y).map(|index| Hit::Row { table: t.id, index })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::aggregate::Limits;
    use crate::console::app::{HeaderInfo, Msg, update};
    use crate::console::bench::{render, synthetic_event};
    use crate::console::theme::Theme;
    use crossterm::event::{
        KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
    };
    use ratatui::buffer::Buffer;
    use std::sync::Arc;

    const W: u16 = 160;
    const H: u16 = 45;

    fn state(events: u64) -> AppState {
        let start = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let mut s = AppState::new(
            Theme::default(),
            HeaderInfo::default(),
            Limits::default(),
            start,
        );
        update(&mut s, Msg::Resize(W, H));
        for i in 0..events {
            update(&mut s, Msg::Event(Arc::new(synthetic_event(i, start, 100))));
        }
        s
    }

    fn click(s: &mut AppState, x: u16, y: u16) {
        update(
            s,
            Msg::Mouse(MouseEvent {
                kind: MouseEventKind::Down(MouseButton::Left),
                column: x,
                row: y,
                modifiers: KeyModifiers::NONE,
            }),
        );
    }

    fn line(b: &Buffer, y: u16) -> String {
        (0..b.area.width).map(|x| b[(x, y)].symbol()).collect()
    }

    /// A row's text after the border and the selection symbol column.
    fn skip(l: &str) -> String {
        l.chars().skip(3).collect()
    }

    /// The screen line showing the selection symbol, below the tabs.
    fn selected_line(b: &Buffer) -> Option<u16> {
        (2..b.area.height).find(|y| line(b, *y).contains(super::super::widgets::SELECTED.trim()))
    }

    #[test]
    fn click_on_a_row_selects_that_row() {
        let mut s = state(300);
        s.view = ViewId::Log;
        let before = render(&s, W, H);
        // Line 2 is the table's top border, 3 its header, 4 row 0; click row 5.
        let y = 4 + 5;
        let row_text = line(&before, y);
        click(&mut s, 20, y);
        assert_eq!(s.selected[ViewId::Log.index()], 5);
        let after = render(&s, W, H);
        assert_eq!(
            selected_line(&after),
            Some(y),
            "the symbol is on the clicked line"
        );
        assert_eq!(
            skip(&line(&after, y)),
            skip(&row_text),
            "the same event stays under the pointer"
        );
    }

    #[test]
    fn click_in_a_scrolled_table_selects_the_row_drawn_there() {
        let mut s = state(300);
        s.view = ViewId::Log;
        for _ in 0..100 {
            update(&mut s, Msg::Key(KeyEvent::from(KeyCode::Char('j'))));
        }
        let before = render(&s, W, H);
        let offset = s.scroll[ViewId::Log.index()];
        assert!(offset > 50, "the table scrolled: first row {offset}");
        let y = 4 + 3;
        let row_text = line(&before, y);
        click(&mut s, 60, y);
        assert_eq!(s.selected[ViewId::Log.index()], offset + 3);
        let after = render(&s, W, H);
        assert_eq!(selected_line(&after), Some(y));
        assert_eq!(
            skip(&line(&after, y)),
            skip(&row_text),
            "no jump after the click"
        );
    }

    #[test]
    fn click_on_an_identity_selects_it_and_a_tail_row_opens_it_in_the_log() {
        let mut s = state(300);
        let geoms = tables(&s, screen(Rect::new(0, 0, W, H)).unwrap().body);
        let ids = geoms[0];
        assert_eq!(ids.id, TableId::View(ViewId::Traffic));
        click(&mut s, ids.area.x + 5, first_row_y(ids.area) + 2);
        assert_eq!(s.selected[ViewId::Traffic.index()], 2);
        assert_eq!(
            selected_line(&render(&s, W, H)),
            Some(first_row_y(ids.area) + 2)
        );

        let tail = geoms[1];
        assert_eq!(tail.id, TableId::Tail);
        click(&mut s, tail.area.x + 5, first_row_y(tail.area) + 4);
        assert_eq!(s.view, ViewId::Log);
        assert_eq!(s.selected[ViewId::Log.index()], 4);
    }

    #[test]
    fn click_on_a_tab_switches_view() {
        let mut s = state(10);
        let b = render(&s, W, H);
        let tabs = line(&b, 1);
        for v in [ViewId::Certs, ViewId::Log, ViewId::Traffic] {
            let label = tab_label(v);
            let x = tabs.find(label.trim()).unwrap() as u16;
            click(&mut s, x + 1, 1);
            assert_eq!(s.view, v);
        }
    }

    #[test]
    fn click_outside_rows_and_tabs_does_nothing() {
        let mut s = state(300);
        s.view = ViewId::Log;
        update(&mut s, Msg::Key(KeyEvent::from(KeyCode::Char('j'))));
        let (view, selected) = (s.view, s.selected);
        // Header, table border, table header, footer, right of the last tab.
        for (x, y) in [(5, 0), (5, 2), (5, 3), (0, 10), (5, H - 1), (W - 2, 1)] {
            click(&mut s, x, y);
            assert_eq!((s.view, s.selected), (view, selected), "click at {x},{y}");
        }
        // Under an overlay, clicks do nothing either.
        update(&mut s, Msg::Key(KeyEvent::from(KeyCode::Char('?'))));
        click(&mut s, 20, 9);
        assert_eq!(s.selected, selected);
        // Nor in a too-small terminal.
        update(&mut s, Msg::Key(KeyEvent::from(KeyCode::Esc)));
        update(&mut s, Msg::Resize(60, 20));
        click(&mut s, 20, 9);
        assert_eq!(s.selected, selected);
    }
}
