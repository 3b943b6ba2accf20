//! View 8, Issuers: each `[[oidc_issuer]]` with its key set's freshness, key ids, last
//! refresh and failures, and the workload identities seen from it; below the table, the
//! selected issuer in full (what `botgate issuer show` prints, plus this gate's counters and
//! the key-set changes seen).

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::console::app::{AppState, ViewId};
use crate::console::model::{CredentialStatus, IssuerRow};
use crate::oidc::view::age_text;

use super::widgets::{Col, block, clock_time, col, seen, title, wide};

/// Table rows shown above the details before the list scrolls.
const LIST_ROWS: usize = 8;

/// Identities listed in the details.
const MAX_IDENTITIES: usize = 8;

/// The Issuers table's columns.
pub fn cols() -> [Col; 7] {
    [
        col("name", Constraint::Fill(1)),
        wide("issuer", Constraint::Fill(3), 120),
        col("key set", Constraint::Length(20)),
        col("key ids", Constraint::Fill(2)),
        col("last refresh", Constraint::Fill(2)),
        col("verified / refused", Constraint::Length(18)),
        col("identities", Constraint::Length(10)),
    ]
}

/// The issuers table and the details below it (for a non-empty list).
pub fn layout(area: Rect, s: &AppState) -> (Rect, Rect) {
    let list_h = s.issuers.len().min(LIST_ROWS) as u16 + 3;
    let [list, details] =
        Layout::vertical([Constraint::Length(list_h), Constraint::Min(0)]).areas(area);
    (list, details)
}

/// The identities seen from issuer `name` (`oidc:<name>/<sub>`), busiest first.
fn identities<'a>(
    s: &'a AppState,
    name: &str,
) -> Vec<&'a crate::console::aggregate::IdentityStats> {
    let prefix = format!("oidc:{name}/");
    let mut ids: Vec<_> = s
        .shown_identities()
        .iter()
        .filter(|i| i.name.starts_with(&prefix))
        .collect();
    ids.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.name.cmp(&b.name)));
    ids
}

/// The last refresh, as the table says it: `ok`, or how many failed and why.
fn refresh_text(r: &IssuerRow) -> String {
    let v = &r.view;
    match (&v.last_error, &v.last_attempt) {
        (Some(e), _) => format!("{} failed: {e}", v.failures),
        (None, Some(_)) => "ok".into(),
        (None, None) => "never tried".into(),
    }
}

pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let blk = block(
        t,
        title(t, "OIDC issuers", &[format!("{}", s.issuers.len())]),
    );
    if s.issuers.is_empty() {
        let inner = blk.inner(area);
        frame.render_widget(blk, area);
        let [mid] = Layout::vertical([Constraint::Length(2)])
            .flex(Flex::Center)
            .areas(inner);
        let p = Paragraph::new(vec![
            Line::styled("no [[oidc_issuer]] in the policy file", t.base()),
            Line::styled(
                "CI and Kubernetes jobs can sign in with their platform's OIDC token: README, Credentials without secrets",
                t.muted(),
            ),
        ])
        .centered();
        frame.render_widget(p, mid);
        return;
    }
    let (list, details) = layout(area, s);
    super::columns::view_table(
        frame,
        list,
        s,
        ViewId::Issuers,
        blk,
        &cols(),
        s.issuers.len(),
        Some(s.selected[ViewId::Issuers.index()]),
        s.scroll[ViewId::Issuers.index()],
        |i| {
            let r = &s.issuers[i];
            let v = &r.view;
            let age_style = if v.stale || v.age_seconds.is_none() {
                t.status(CredentialStatus::Critical)
            } else {
                t.base()
            };
            let refresh_style = if v.last_error.is_some() {
                t.status(CredentialStatus::Warn)
            } else {
                t.base()
            };
            let counts = r
                .counts
                .map(|c| format!("{} / {}", c.verified, c.refused))
                .unwrap_or_else(|| "-".into());
            let cells = vec![
                Line::from(Span::styled(v.name.clone(), t.title())),
                Line::from(v.issuer.clone()),
                Line::from(Span::styled(age_text(v), age_style)),
                Line::from(if v.kids.is_empty() {
                    "-".to_string()
                } else {
                    v.kids.join(", ")
                }),
                Line::from(Span::styled(refresh_text(r), refresh_style)),
                Line::from(counts),
                Line::from(identities(s, &v.name).len().to_string()),
            ];
            (cells, t.base())
        },
    );
    if let Some(r) = s.issuers.get(s.selected[ViewId::Issuers.index()]) {
        draw_details(frame, details, s, r);
    }
}

/// The selected issuer in full.
fn draw_details(frame: &mut Frame, area: Rect, s: &AppState, r: &IssuerRow) {
    let t = &s.theme;
    let v = &r.view;
    let label = |name: &str| Span::styled(format!("{name:<14}"), t.muted());
    let mut lines = vec![
        Line::from(vec![label("keys from"), Span::raw(v.source.clone())]),
        Line::from(vec![label("audiences"), Span::raw(v.audiences.join(", "))]),
        Line::from(vec![
            label("algorithms"),
            Span::raw(v.algorithms.join(", ")),
        ]),
    ];
    let max_age = crate::duration::countdown(chrono::Duration::seconds(v.max_key_age_seconds));
    let mut key_set = vec![
        label("key set"),
        Span::styled(
            age_text(v),
            if v.stale {
                t.status(CredentialStatus::Critical)
                    .add_modifier(Modifier::BOLD)
            } else {
                t.base()
            },
        ),
        Span::styled(
            format!("  (alert oidc_keys_stale after {max_age})"),
            t.muted(),
        ),
    ];
    if let Some(from) = &v.from {
        key_set.push(Span::styled(format!("  from {from}"), t.muted()));
    }
    lines.push(Line::from(key_set));
    if let Some(e) = &v.expires_at {
        lines.push(Line::from(vec![
            label("next refresh"),
            Span::raw(e.clone()),
        ]));
    }
    lines.push(Line::from(vec![
        label("last refresh"),
        match (&v.last_attempt, &v.last_error) {
            (Some(at), Some(e)) => Span::styled(
                format!(
                    "{at}: failed ({} in a row): {e}; the last good key set stays in use",
                    v.failures
                ),
                t.status(CredentialStatus::Warn),
            ),
            (Some(at), None) => Span::raw(format!("{at}: ok")),
            (None, _) => Span::styled(
                format!(
                    "never (no gate has fetched it; `botgate issuer refresh {}`)",
                    v.name
                ),
                t.muted(),
            ),
        },
    ]));
    lines.push(Line::from(vec![
        label("this gate"),
        match r.counts {
            Some(c) => Span::raw(format!(
                "{} verified, {} refused, {} unknown key id",
                c.verified, c.refused, c.kid_misses
            )),
            None => Span::styled(
                "counters live in the gate's process (demo, serve --console, /metrics)",
                t.muted(),
            ),
        },
    ]));
    for (i, k) in v.keys.iter().enumerate() {
        lines.push(Line::from(vec![
            label(if i == 0 { "keys" } else { "" }),
            Span::styled(
                k.kid.clone().unwrap_or_else(|| "(no kid)".into()),
                t.title(),
            ),
            Span::raw(format!(
                "  {}{}",
                k.key,
                k.alg.map(|a| format!("  alg {a}")).unwrap_or_default()
            )),
        ]));
    }
    let changes: Vec<_> = s
        .key_changes
        .iter()
        .filter(|c| c.issuer == v.name)
        .take(3)
        .collect();
    for (i, c) in changes.iter().enumerate() {
        lines.push(Line::from(vec![
            label(if i == 0 { "key changes" } else { "" }),
            Span::raw(format!(
                "{}  added {}, removed {}",
                clock_time(s.now, c.at),
                list_or_none(&c.added),
                list_or_none(&c.removed)
            )),
        ]));
    }
    let ids = identities(s, &v.name);
    if ids.is_empty() {
        lines.push(Line::from(vec![
            label("identities"),
            Span::styled("none seen in the retained events", t.muted()),
        ]));
    }
    for (i, id) in ids.iter().take(MAX_IDENTITIES).enumerate() {
        lines.push(Line::from(vec![
            label(if i == 0 { "identities" } else { "" }),
            Span::styled(format!("{:<48}", id.name), t.title()),
            Span::raw(format!(
                " {:>7} req  {:>6} denied  last {}",
                id.total,
                id.denied,
                seen(s.shown_now(), Some(id.last_seen))
            )),
        ]));
    }
    if ids.len() > MAX_IDENTITIES {
        lines.push(Line::styled(
            format!(
                "{:14}… and {} more (filter the Traffic view with oidc:{}/)",
                "",
                ids.len() - MAX_IDENTITIES,
                v.name
            ),
            t.muted(),
        ));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(t, format!(" {} ", v.name))),
        area,
    );
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
