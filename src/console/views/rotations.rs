//! View 6, Rotations: credential rotations and their state; "no rotations" until there are some.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Cell, Paragraph};

use crate::console::app::{AppState, ViewId};

use super::widgets::{block, col, or_dash, title, windowed_table};

pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let blk = block(
        t,
        title(t, "rotations", &[format!("{}", s.rotations.len())]),
    );
    if s.rotations.is_empty() {
        let inner = blk.inner(area);
        frame.render_widget(blk, area);
        let [mid] = Layout::vertical([Constraint::Length(2)])
            .flex(ratatui::layout::Flex::Center)
            .areas(inner);
        let p = Paragraph::new(vec![
            ratatui::text::Line::styled("no rotations", t.base()),
            ratatui::text::Line::styled(
                "start one with `botgate rotate start token NAME`",
                t.muted(),
            ),
        ])
        .centered();
        frame.render_widget(p, mid);
        return;
    }
    windowed_table(
        frame,
        area,
        t,
        blk,
        &[
            col("id", Constraint::Length(14)),
            col("kind", Constraint::Length(6)),
            col("old", Constraint::Fill(2)),
            col("new", Constraint::Fill(2)),
            col("state", Constraint::Fill(1)),
        ],
        s.rotations.len(),
        Some(s.selected[ViewId::Rotations.index()]),
        |i| {
            let r = &s.rotations[i];
            let cells = vec![
                Cell::from(r.id.clone()),
                Cell::from(r.kind.clone()),
                Cell::from(r.old.clone()),
                Cell::from(or_dash(r.new.as_deref())),
                Cell::from(r.state.clone()),
            ];
            (cells, t.base())
        },
    );
}
