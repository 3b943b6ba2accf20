//! View 2, Tokens: the service-token inventory with an expiry countdown that ticks every second,
//! status as colour and label (ok / warn ≤ 30 d / critical ≤ 7 d / expired / revoked), last seen,
//! the policies that admit each token, and the rotation due date (created + 90 days).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::Cell;

use crate::console::app::{AppState, ViewId};
use crate::console::model::CredentialStatus;
use crate::console::rows;
use crate::duration::countdown;

use super::widgets::{block, col, date, seen, title, wide, windowed_table};

pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let list = rows::tokens(s);
    let counts = status_counts(list.iter().map(|r| r.status(s.now)));
    windowed_table(
        frame,
        area,
        t,
        block(
            t,
            title(
                t,
                "service tokens",
                &[
                    format!("{}", list.len()),
                    counts,
                    format!("sort {}", s.sort_label(ViewId::Tokens)),
                ],
            ),
        ),
        &[
            col("name", Constraint::Fill(3)),
            col("status", Constraint::Length(8)),
            col("expires in", Constraint::Length(11)),
            wide("expires", Constraint::Length(10), 120),
            col("last seen", Constraint::Length(9)),
            col("rotation due", Constraint::Length(18)),
            wide("client id", Constraint::Length(14), 140),
            wide("policies", Constraint::Fill(3), 120),
        ],
        list.len(),
        Some(s.selected[ViewId::Tokens.index()]),
        s.scroll[ViewId::Tokens.index()],
        |i| {
            let tk = list[i];
            let status = tk.status(s.now);
            let row_style = row_style(s, status);
            let (due_text, due_style) = rotation_due(s, tk.rotation_due(), tk.revoked, row_style);
            let short_id: String = tk.client_id.chars().take(12).collect();
            let cells = vec![
                Cell::from(tk.name.clone()),
                Cell::from(Span::styled(status.label(), t.status(status))),
                Cell::from(Span::styled(
                    expires_in(s, tk.expires_at, tk.revoked),
                    t.status(status),
                )),
                Cell::from(date(tk.expires_at)),
                Cell::from(seen(s.now, rows::last_seen(s, &tk.name, tk.last_seen_at))),
                Cell::from(Span::styled(due_text, due_style)),
                Cell::from(format!("{short_id}…")),
                Cell::from(if tk.policies.is_empty() {
                    "-".to_string()
                } else {
                    tk.policies.join(", ")
                }),
            ];
            (cells, row_style)
        },
    );
}

/// The rotation due date (warn-coloured and marked `overdue` once passed), or `-` for a
/// revoked credential.
pub fn rotation_due(
    s: &AppState,
    due: chrono::DateTime<chrono::Utc>,
    revoked: bool,
    row_style: ratatui::style::Style,
) -> (String, ratatui::style::Style) {
    if revoked {
        ("-".to_string(), row_style)
    } else if due <= s.now {
        (
            format!("{} overdue", date(due)),
            s.theme.status(CredentialStatus::Warn),
        )
    } else {
        (date(due), row_style)
    }
}

/// The countdown, or `-` for a revoked credential (its expiry no longer matters).
pub fn expires_in(s: &AppState, at: chrono::DateTime<chrono::Utc>, revoked: bool) -> String {
    if revoked {
        "-".into()
    } else {
        countdown(at - s.now)
    }
}

/// Whole-row colour: the status colour unless the credential is fine.
pub fn row_style(s: &AppState, status: CredentialStatus) -> Style {
    match status {
        CredentialStatus::Ok => s.theme.base(),
        other => s.theme.base().patch(s.theme.status(other)),
    }
}

/// `2 expired, 1 critical, 3 warn`.
pub fn status_counts(statuses: impl Iterator<Item = CredentialStatus>) -> String {
    let mut n = [0usize; 5];
    for st in statuses {
        n[st as usize] += 1;
    }
    let parts: Vec<String> = [
        CredentialStatus::Expired,
        CredentialStatus::Critical,
        CredentialStatus::Warn,
        CredentialStatus::Revoked,
    ]
    .iter()
    .filter(|st| n[**st as usize] > 0)
    .map(|st| format!("{} {}", n[*st as usize], st.label()))
    .collect();
    parts.join(", ")
}
