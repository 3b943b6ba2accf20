//! View 5, Policies: each app with its policies in evaluation order, the action, and which
//! credentials each admits. A failed reload shows a banner: the gate keeps the last good policy.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::console::app::{AppState, ViewId};
use crate::console::model::CredentialStatus;
use crate::console::rows;

use super::widgets::{Col, block, col, title, wide};

/// The reload-error banner (when a reload failed) and the table's area.
pub fn layout(area: Rect, s: &AppState) -> (Option<Rect>, Rect) {
    if s.reload_error.is_some() {
        let [banner, rest] =
            Layout::vertical([Constraint::Length(4), Constraint::Min(0)]).areas(area);
        (Some(banner), rest)
    } else {
        (None, area)
    }
}

/// The Policies table's columns.
pub fn cols() -> [Col; 6] {
    [
        col("app", Constraint::Fill(2)),
        wide("hostnames", Constraint::Fill(2), 120),
        col("#", Constraint::Length(2)),
        col("policy", Constraint::Fill(2)),
        col("action", Constraint::Length(12)),
        col("admits", Constraint::Fill(5)),
    ]
}

pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let area = match (&s.reload_error, layout(area, s)) {
        (Some(err), (Some(banner), rest)) => {
            let crit = t.status(CredentialStatus::Critical);
            let p = Paragraph::new(vec![
                Line::styled(
                    "policy reload failed: the gate still enforces the last good policy",
                    crit.add_modifier(Modifier::BOLD),
                ),
                Line::styled(err.clone(), crit),
            ])
            .wrap(Wrap { trim: true })
            .block(block(t, " invalid reload ").border_style(crit));
            frame.render_widget(p, banner);
            rest
        }
        (_, (_, table)) => table,
    };
    let lines = rows::policy_lines(s);
    let n_policies: usize = s.apps.iter().map(|a| a.policies.len()).sum();
    super::columns::view_table(
        frame,
        area,
        s,
        ViewId::Policies,
        block(
            t,
            title(
                t,
                "apps and policies",
                &[
                    format!("{} apps, {n_policies} policies", s.apps.len()),
                    "first match decides".into(),
                ],
            ),
        ),
        &cols(),
        lines.len(),
        Some(s.selected[ViewId::Policies.index()]),
        s.scroll[ViewId::Policies.index()],
        |i| {
            let l = lines[i];
            let first = i == 0 || !std::ptr::eq(lines[i - 1].app, l.app);
            let second = i > 0 && !first && (i < 2 || !std::ptr::eq(lines[i - 2].app, l.app));
            let only = first && lines.get(i + 1).is_none_or(|n| !std::ptr::eq(n.app, l.app));
            let (app, hosts) = if only {
                // One line for the app: the audience tag goes after its hostnames.
                let aud = l
                    .app
                    .aud
                    .as_ref()
                    .map(|aud| format!(" · aud {}…", &aud[..aud.len().min(12)]))
                    .unwrap_or_default();
                (
                    l.app.name.clone(),
                    format!("{}{aud}", l.app.hostnames.join(", ")),
                )
            } else if first {
                (l.app.name.clone(), l.app.hostnames.join(", "))
            } else if second {
                // The app's second line names the origin assertion's audience tag.
                let aud = match &l.app.aud {
                    Some(aud) => format!("aud {}…", &aud[..aud.len().min(12)]),
                    None => "no assertion".to_string(),
                };
                (String::new(), aud)
            } else {
                (String::new(), String::new())
            };
            match l.policy {
                Some(p) => {
                    let action_style = match p.action.as_str() {
                        "block" => t.decision(false),
                        "bypass" => t.status(CredentialStatus::Warn),
                        _ => t.decision(true),
                    };
                    let cells = vec![
                        Line::from(Span::styled(app, t.title())),
                        Line::from(hosts),
                        Line::from(l.order.to_string()),
                        Line::from(p.name.clone()),
                        Line::from(Span::styled(p.action.clone(), action_style)),
                        Line::from(if p.admits.is_empty() {
                            "nothing".to_string()
                        } else {
                            p.admits.join(", ")
                        }),
                    ];
                    (cells, t.base())
                }
                None => {
                    let cells = vec![
                        Line::from(Span::styled(app, t.title())),
                        Line::from(hosts),
                        Line::from(""),
                        Line::from(Span::styled(
                            "no policies: every request is denied",
                            t.muted(),
                        )),
                        Line::from(""),
                        Line::from(""),
                    ];
                    (cells, t.base())
                }
            }
        },
    );
}
