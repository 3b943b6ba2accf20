//! View 3, Certs: the client-certificate inventory (CN, issuer, serial, not-after countdown,
//! last seen, rotation due from the `[rotation]` cadence, status as colour and label).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;

use crate::console::app::{AppState, ViewId};
use crate::console::rows;

use super::timelines;
use super::tokens::{Lifecycle, inventory_block, lifecycle_cells, lifecycle_cols};
use super::widgets::{Col, col, wide};

/// The Certs table's columns.
pub fn cols() -> Vec<Col> {
    let mut cols = lifecycle_cols("common name", "not after").to_vec();
    cols.extend([
        wide("issuer", Constraint::Fill(2), 120),
        col("serial", Constraint::Length(13)),
        wide("key", Constraint::Length(10), 140),
        wide("source", Constraint::Fill(1), 140),
    ]);
    cols
}

pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let list = rows::certs(s);
    let cols = cols();
    let (table, picture) = timelines::split(area, list.len(), timelines::EXPIRY_HEIGHT);
    if let Some(picture) = picture {
        timelines::draw_expiry(
            frame,
            picture,
            s,
            list.iter().map(|c| (c.not_after, c.status(s.now))),
        );
    }
    let (table, pane) = super::pane::split(table, list.len(), s);
    if let Some(pane) = pane {
        super::pane::draw(frame, pane, s);
    }
    super::columns::view_table(
        frame,
        table,
        s,
        ViewId::Certs,
        inventory_block(
            s,
            "client certificates",
            ViewId::Certs,
            list.iter().map(|r| r.status(s.now)),
        ),
        &cols,
        list.len(),
        Some(s.selected[ViewId::Certs.index()]),
        s.scroll[ViewId::Certs.index()],
        |i| {
            let c = list[i];
            let (mut cells, style) = lifecycle_cells(
                s,
                &Lifecycle {
                    name: &c.common_name,
                    status: c.status(s.now),
                    expires_at: c.not_after,
                    revoked: c.revoked,
                    last_seen_at: c.last_seen_at,
                    rotation_due: c.rotation_due(),
                },
            );
            let serial: String = c.serial.chars().take(12).collect();
            cells.extend([
                Line::from(c.issuer.clone()),
                Line::from(if c.serial.chars().count() > 12 {
                    format!("{serial}…")
                } else {
                    serial
                }),
                Line::from(c.key_type.clone()),
                Line::from(c.source.clone()),
            ]);
            (cells, style)
        },
    );
}
