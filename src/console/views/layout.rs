//! Where things are on screen, computed by the same functions the draw pass uses, so the mouse
//! hit-test (`hit`) always agrees with what is drawn: the screen split (header, tabs, body,
//! footer), the tab labels, each view's table areas, and the first row shown of each table
//! (`widgets::window_offset`). Pure: no state is written while drawing.

use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::text::Span;

use crate::console::app::{AppState, ViewId};
use crate::console::rows;

use super::widgets::{first_row_y, visible_rows, window_offset};
use super::{MIN_HEIGHT, MIN_WIDTH, policies, rotations, traffic};

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
        ViewId::Policies => vec![TableGeom::new(s, TableId::View(v), policies::layout(body, s).1)],
        ViewId::Rotations if s.rotations.is_empty() => Vec::new(),
        ViewId::Rotations => vec![TableGeom::new(
            s,
            TableId::View(v),
            rotations::layout(body, s).0,
        )],
        ViewId::Tokens | ViewId::Certs | ViewId::Alerts | ViewId::Log => {
            vec![TableGeom::new(s, TableId::View(v), body)]
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
        _ => sc.body,
    };
    TableGeom::new(s, TableId::View(view), area).offset
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
