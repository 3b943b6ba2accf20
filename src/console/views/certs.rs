//! View 3, Certs: the client-certificate inventory (CN, issuer, serial, not-after countdown,
//! last seen, rotation due from the `[rotation]` cadence, status as colour and label).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::Cell;

use crate::console::app::{AppState, ViewId};
use crate::console::rows;

use super::tokens::{expires_in, rotation_due, row_style, status_counts};
use super::widgets::{block, col, date, seen, title, wide, windowed_table};

pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let list = rows::certs(s);
    let counts = status_counts(list.iter().map(|r| r.status(s.now)));
    windowed_table(
        frame,
        area,
        t,
        block(
            t,
            title(
                t,
                "client certificates",
                &[
                    format!("{}", list.len()),
                    counts,
                    format!("sort {}", s.sort_label(ViewId::Certs)),
                ],
            ),
        ),
        &[
            col("common name", Constraint::Fill(3)),
            col("status", Constraint::Length(8)),
            col("expires in", Constraint::Length(11)),
            wide("not after", Constraint::Length(10), 120),
            col("last seen", Constraint::Length(9)),
            col("rotation due", Constraint::Length(18)),
            wide("issuer", Constraint::Fill(2), 120),
            col("serial", Constraint::Length(13)),
            wide("key", Constraint::Length(10), 140),
            wide("source", Constraint::Fill(1), 140),
        ],
        list.len(),
        Some(s.selected[ViewId::Certs.index()]),
        s.scroll[ViewId::Certs.index()],
        |i| {
            let c = list[i];
            let status = c.status(s.now);
            let serial: String = c.serial.chars().take(12).collect();
            let (due_text, due_style) =
                rotation_due(s, c.rotation_due(), c.revoked, row_style(s, status));
            let cells = vec![
                Cell::from(c.common_name.clone()),
                Cell::from(Span::styled(status.label(), t.status(status))),
                Cell::from(Span::styled(
                    expires_in(s, c.not_after, c.revoked),
                    t.status(status),
                )),
                Cell::from(date(c.not_after)),
                Cell::from(seen(
                    s.now,
                    rows::last_seen(s, &c.common_name, c.last_seen_at),
                )),
                Cell::from(Span::styled(due_text, due_style)),
                Cell::from(c.issuer.clone()),
                Cell::from(if c.serial.chars().count() > 12 {
                    format!("{serial}…")
                } else {
                    serial
                }),
                Cell::from(c.key_type.clone()),
                Cell::from(c.source.clone()),
            ];
            (cells, row_style(s, status))
        },
    );
}
