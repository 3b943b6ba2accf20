//! Moving around the tables: selection by keys, wheel and click (hit-testing through the layout
//! the views draw with), paging, and keeping selections and scroll positions in range.

use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};

use super::app::{AppState, Overlay, ViewId};
use super::rows;
use super::views;
use super::views::layout::{Hit, TableId};

impl AppState {
    /// Remember where the current view's table is scrolled, after the selection moved.
    pub(super) fn remember_scroll(&mut self) {
        let v = self.view;
        self.scroll[v.index()] = views::layout::offset_of(self, v);
    }

    /// A left click at column `x`, line `y`: a tab switches view, a table row is selected (a
    /// live-tail row is selected in the Log view, which opens). Ignored under an overlay or a
    /// question.
    pub(super) fn click(&mut self, x: u16, y: u16) {
        if self.overlay.is_some() || self.prompt.is_some() {
            return;
        }
        match views::layout::hit(self, x, y) {
            Some(Hit::Tab(v)) => self.show_view(v),
            Some(Hit::Row {
                table: TableId::View(v),
                index,
            }) => self.selected[v.index()] = index,
            Some(Hit::Row {
                table: TableId::Tail,
                index,
            }) => {
                self.show_view(ViewId::Log);
                self.selected[ViewId::Log.index()] = index;
            }
            None => {}
        }
    }

    pub(super) fn page(&self) -> usize {
        usize::from(self.size.1).saturating_sub(12).max(5)
    }

    pub(super) fn move_selection(&mut self, delta: isize) {
        let n = rows::row_count(self, self.view);
        let i = self.view.index();
        self.selected[i] = if n == 0 {
            0
        } else {
            (self.selected[i] as isize + delta).clamp(0, n as isize - 1) as usize
        };
    }

    pub(super) fn clamp_selections(&mut self) {
        for v in ViewId::ALL {
            let n = rows::row_count(self, v);
            let s = &mut self.selected[v.index()];
            *s = (*s).min(n.saturating_sub(1));
        }
    }

    pub(super) fn mouse(&mut self, m: MouseEvent) {
        let delta = match m.kind {
            MouseEventKind::ScrollDown => 1,
            MouseEventKind::ScrollUp => -1,
            MouseEventKind::Down(MouseButton::Left) => return self.click(m.column, m.row),
            _ => return,
        };
        match &mut self.overlay {
            Some(Overlay::Help { scroll } | Overlay::Details { scroll, .. }) => {
                *scroll = scroll.saturating_add_signed(delta as i16);
            }
            None => self.move_selection(delta),
        }
    }
}
