//! View 4, Alerts: newest first, one row per alert id with its latest state, severity (colour
//! and label), the credential it is about and its evidence.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};

use crate::console::alerts::AlertState;
use crate::console::app::{AppState, ViewId};
use crate::console::rows;

use super::timelines;
use super::widgets::{Col, block, col, seen, title, wide};

/// The Alerts table's columns.
pub fn cols() -> [Col; 7] {
    [
        col("last seen", Constraint::Length(9)),
        col("severity", Constraint::Length(8)),
        wide("state", Constraint::Length(8), 120),
        col("credential", Constraint::Fill(2)),
        col("alert", Constraint::Fill(4)),
        wide("count", Constraint::Length(6), 100),
        wide("evidence", Constraint::Fill(4), 120),
    ]
}

pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let list = rows::alerts(s);
    let open = list.iter().filter(|a| a.state == AlertState::Open).count();
    let mut parts = vec![
        format!("{open} open, {} resolved", list.len() - open),
        format!("sort {}", s.sort_label(ViewId::Alerts)),
    ];
    if s.shown_alerts().malformed > 0 {
        parts.push(format!(
            "{} unreadable alert events",
            s.shown_alerts().malformed
        ));
    }
    let (table, picture) = timelines::split(area, list.len(), timelines::ALERTS_HEIGHT);
    if let Some(picture) = picture {
        timelines::draw_alerts(frame, picture, s, &list);
    }
    super::columns::view_table(
        frame,
        table,
        s,
        ViewId::Alerts,
        block(t, title(t, "alerts", &parts)),
        &cols(),
        list.len(),
        Some(s.selected[ViewId::Alerts.index()]),
        s.scroll[ViewId::Alerts.index()],
        |i| {
            let a = list[i];
            let resolved = a.state == AlertState::Resolved;
            let sev = if resolved {
                t.muted()
            } else {
                t.severity(a.severity)
            };
            let cells = vec![
                Line::from(seen(s.now, Some(a.last_seen))),
                Line::from(Span::styled(a.severity.label(), sev)),
                Line::from(Span::styled(
                    if resolved { "resolved" } else { "open" },
                    if resolved { t.muted() } else { t.base() },
                )),
                Line::from(a.credential.clone().unwrap_or_else(|| "-".into())),
                Line::from(a.title.clone()),
                Line::from(a.count.to_string()).right_aligned(),
                Line::from(Span::styled(a.evidence_text(), t.muted())),
            ];
            (cells, if resolved { t.muted() } else { t.base() })
        },
    );
}
