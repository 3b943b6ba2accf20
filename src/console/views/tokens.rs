//! View 2, Tokens: the service-token inventory with an expiry countdown that ticks every second,
//! status as colour and label (ok / warn ≤ 30 d / critical ≤ 7 d / expired / revoked), last seen,
//! the policies that admit each token, and the rotation due date (created + 90 days).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row};

use crate::console::app::{AppState, ViewId};
use crate::console::model::CredentialStatus;
use crate::console::rows;
use crate::duration::countdown;

use super::widgets::{block, date, seen, title, windowed_table};

pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let list = rows::tokens(s);
    let counts = status_counts(list.iter().map(|r| r.status(s.now)));
    windowed_table(
        frame,
        area,
        t,
        block(t, title(t, "service tokens", &[format!("{}", list.len()), counts, format!("sort {}", s.sort_label(ViewId::Tokens))])),
        &["name", "status", "expires in", "expires", "last seen", "rotation due", "client id", "policies"],
        &[
            Constraint::Fill(3),
            Constraint::Length(8),
            Constraint::Length(11),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Length(12),
            Constraint::Length(14),
            Constraint::Fill(3),
        ],
        list.len(),
        Some(s.selected[ViewId::Tokens.index()]),
        |i| {
            let tk = list[i];
            let status = tk.status(s.now);
            let row_style = row_style(s, status);
            let due = tk.rotation_due();
            let due_style = if due <= s.now && !tk.revoked { t.status(CredentialStatus::Warn) } else { row_style };
            let short_id: String = tk.client_id.chars().take(12).collect();
            Row::new(vec![
                Cell::from(tk.name.clone()),
                Cell::from(Span::styled(status.label(), t.status(status))),
                Cell::from(Span::styled(countdown(tk.expires_at - s.now), t.status(status))),
                Cell::from(date(tk.expires_at)),
                Cell::from(seen(s.now, rows::last_seen(s, &tk.name, tk.last_seen_at))),
                Cell::from(Span::styled(date(due), due_style)),
                Cell::from(format!("{short_id}…")),
                Cell::from(if tk.policies.is_empty() { "-".to_string() } else { tk.policies.join(", ") }),
            ])
            .style(row_style)
        },
    );
}

/// Whole-row colour: the status colour unless the credential is fine.
pub fn row_style(s: &AppState, status: CredentialStatus) -> ratatui::style::Style {
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
    let parts: Vec<String> = [CredentialStatus::Expired, CredentialStatus::Critical, CredentialStatus::Warn, CredentialStatus::Revoked]
        .iter()
        .filter(|st| n[**st as usize] > 0)
        .map(|st| format!("{} {}", n[*st as usize], st.label()))
        .collect();
    parts.join(", ")
}
