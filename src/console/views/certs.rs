//! View 3, Certs: the client-certificate inventory (CN, issuer, serial, not-after countdown,
//! last seen, status as colour and label).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row};

use crate::console::app::{AppState, ViewId};
use crate::console::rows;
use crate::duration::countdown;

use super::tokens::{row_style, status_counts};
use super::widgets::{block, date, seen, title, windowed_table};

pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let list = rows::certs(s);
    let counts = status_counts(list.iter().map(|r| r.status(s.now)));
    windowed_table(
        frame,
        area,
        t,
        block(t, title(t, "client certificates", &[format!("{}", list.len()), counts, format!("sort {}", s.sort_label(ViewId::Certs))])),
        &["common name", "status", "expires in", "not after", "last seen", "issuer", "serial", "key", "source"],
        &[
            Constraint::Fill(3),
            Constraint::Length(8),
            Constraint::Length(11),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Fill(2),
            Constraint::Length(14),
            Constraint::Length(10),
            Constraint::Fill(1),
        ],
        list.len(),
        Some(s.selected[ViewId::Certs.index()]),
        |i| {
            let c = list[i];
            let status = c.status(s.now);
            let serial: String = c.serial.chars().take(12).collect();
            Row::new(vec![
                Cell::from(c.common_name.clone()),
                Cell::from(Span::styled(status.label(), t.status(status))),
                Cell::from(Span::styled(countdown(c.not_after - s.now), t.status(status))),
                Cell::from(date(c.not_after)),
                Cell::from(seen(s.now, rows::last_seen(s, &c.common_name, c.last_seen_at))),
                Cell::from(c.issuer.clone()),
                Cell::from(if c.serial.chars().count() > 12 { format!("{serial}…") } else { serial }),
                Cell::from(c.key_type.clone()),
                Cell::from(c.source.clone()),
            ])
            .style(row_style(s, status))
        },
    );
}
