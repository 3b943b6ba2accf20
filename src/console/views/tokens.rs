//! View 2, Tokens: the service-token inventory with an expiry countdown that ticks every second,
//! status as colour and label (ok / warn ≤ 30 d / critical ≤ 7 d / expired / revoked), last seen,
//! the policies that admit each token, and the rotation due date (from the `[rotation]` cadence,
//! 90 days by default). The credential columns and block are shared with the Certs view.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use chrono::{DateTime, Utc};
use ratatui::widgets::Block;

use crate::console::app::{AppState, ViewId};
use crate::console::model::CredentialStatus;
use crate::console::rows;
use crate::duration::countdown;

use super::timelines;
use super::widgets::{Col, block, col, date, seen, title, wide};

/// The Tokens table's columns.
pub fn cols() -> Vec<Col> {
    let mut cols = lifecycle_cols("name", "expires").to_vec();
    cols.extend([
        wide("client id", Constraint::Length(14), 140),
        wide("policies", Constraint::Fill(3), 120),
        wide("bounds", Constraint::Fill(2), 120),
    ]);
    cols
}

pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let list = rows::tokens(s);
    let cols = cols();
    let (table, picture) = timelines::split(area, list.len(), timelines::EXPIRY_HEIGHT);
    if let Some(picture) = picture {
        timelines::draw_expiry(
            frame,
            picture,
            s,
            list.iter().map(|t| (t.expires_at, t.status(s.now))),
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
        ViewId::Tokens,
        inventory_block(
            s,
            "service tokens",
            ViewId::Tokens,
            list.iter().map(|r| r.status(s.now)),
        ),
        &cols,
        list.len(),
        Some(s.selected[ViewId::Tokens.index()]),
        s.scroll[ViewId::Tokens.index()],
        |i| {
            let tk = list[i];
            let (mut cells, style) = lifecycle_cells(
                s,
                &Lifecycle {
                    name: &tk.name,
                    status: tk.status(s.now),
                    expires_at: tk.expires_at,
                    revoked: tk.revoked,
                    last_seen_at: tk.last_seen_at,
                    rotation_due: tk.rotation_due(),
                },
            );
            let short_id: String = tk.client_id.chars().take(12).collect();
            cells.push(Line::from(format!("{short_id}…")));
            cells.push(Line::from(if tk.policies.is_empty() {
                "-".to_string()
            } else {
                tk.policies.join(", ")
            }));
            cells.push(bounds_cell(s, tk));
            (cells, style)
        },
    );
}

/// A token's bounds and what they did in the live traffic: `127.0.0.1/32 · 600/min` and, in
/// the warn colour, `3 limited` (over a rate limit, shadow mode included) and `2 off-net`
/// (refused `token_ip_not_allowed`).
fn bounds_cell<'a>(s: &AppState, tk: &crate::console::model::TokenRow) -> Line<'a> {
    let mut parts = Vec::new();
    match tk.bounds.allow_ips.as_slice() {
        [] => {}
        [one] => parts.push(one.to_string()),
        [first, rest @ ..] => parts.push(format!("{first} +{}", rest.len())),
    }
    if let Some(r) = tk.bounds.rate_limit {
        parts.push(r.rate_text());
    }
    let mut spans = vec![Span::raw(if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(" · ")
    })];
    if let Some(stats) = s.shown_traffic().identities.get(&tk.name) {
        for (n, label) in [
            (stats.rate_limited, "limited"),
            (stats.ip_refused, "off-net"),
        ] {
            if n > 0 {
                spans.push(Span::styled(
                    format!(" {n} {label}"),
                    s.theme.status(CredentialStatus::Warn),
                ));
            }
        }
    }
    ratatui::text::Line::from(spans)
}

/// The columns every credential inventory starts with; `name` and `date` head the identity
/// and the absolute expiry columns.
pub fn lifecycle_cols(name: &'static str, date: &'static str) -> [Col; 6] {
    [
        col(name, Constraint::Fill(3)),
        col("status", Constraint::Length(8)),
        col("expires in", Constraint::Length(11)),
        wide(date, Constraint::Length(10), 120),
        col("last seen", Constraint::Length(9)),
        col("rotation due", Constraint::Length(18)),
    ]
}

/// What every credential row shows first (the cells of `lifecycle_cols`).
#[derive(Debug)]
pub struct Lifecycle<'a> {
    pub name: &'a str,
    pub status: CredentialStatus,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
    /// As stored; the live traffic may have seen it since.
    pub last_seen_at: Option<DateTime<Utc>>,
    pub rotation_due: DateTime<Utc>,
}

/// The cells of `lifecycle_cols` for one credential, and the row's style.
pub fn lifecycle_cells<'a>(s: &AppState, l: &Lifecycle<'_>) -> (Vec<Line<'a>>, Style) {
    let style = row_style(s, l.status);
    let (due_text, due_style) = rotation_due(s, l.rotation_due, l.revoked, style);
    let cells = vec![
        Line::from(l.name.to_string()),
        Line::from(Span::styled(l.status.label(), s.theme.status(l.status))),
        Line::from(Span::styled(
            expires_in(s, l.expires_at, l.revoked),
            s.theme.status(l.status),
        )),
        Line::from(date(l.expires_at)),
        Line::from(seen(s.now, rows::last_seen(s, l.name, l.last_seen_at))),
        Line::from(Span::styled(due_text, due_style)),
    ];
    (cells, style)
}

/// The inventory's bordered block: `title · n · 2 expired, 1 warn · sort …`.
pub fn inventory_block<'a>(
    s: &AppState,
    name: &str,
    view: ViewId,
    statuses: impl ExactSizeIterator<Item = CredentialStatus>,
) -> Block<'a> {
    let n = statuses.len();
    block(
        &s.theme,
        title(
            &s.theme,
            name,
            &[
                n.to_string(),
                status_counts(statuses),
                format!("sort {}", s.sort_label(view)),
            ],
        ),
    )
}

/// The rotation due date (warn-coloured and marked `overdue` once passed), or `-` for a
/// revoked credential.
pub fn rotation_due(
    s: &AppState,
    due: DateTime<Utc>,
    revoked: bool,
    row_style: Style,
) -> (String, Style) {
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
pub fn expires_in(s: &AppState, at: DateTime<Utc>, revoked: bool) -> String {
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
    let mut n = [0usize; 6];
    for st in statuses {
        n[st as usize] += 1;
    }
    let parts: Vec<String> = [
        CredentialStatus::Expired,
        CredentialStatus::Critical,
        CredentialStatus::Warn,
        CredentialStatus::Revoked,
        CredentialStatus::Disabled,
    ]
    .iter()
    .filter(|st| n[**st as usize] > 0)
    .map(|st| format!("{} {}", n[*st as usize], st.label()))
    .collect();
    parts.join(", ")
}
