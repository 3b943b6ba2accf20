//! View 7, Log: the raw audit events in the ring buffer, newest first, scrollable; Enter opens
//! the whole event. Also builds the rows of the Traffic view's live tail.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::audit::{AccessEvent, ConnectionMethod, EventKind};
use crate::console::app::{AppState, ViewId};
use crate::console::rows;

use super::widgets::{Col, block, clock_ms, col, or_dash, title, wide};

pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let n = rows::log_len(s);
    let mut parts = vec![
        format!("{n} of {} kept", s.shown_traffic().ring.capacity()),
        format!("{} seen", s.shown_traffic().totals.events),
    ];
    if !s.filter.is_empty() {
        parts.push(format!("filter {}", s.filter.text()));
    }
    super::columns::view_table(
        frame,
        area,
        s,
        ViewId::Log,
        block(t, title(t, "audit log", &parts)),
        &log_columns(s.shown_traffic().several_nodes()),
        n,
        Some(s.selected[ViewId::Log.index()]),
        s.scroll[ViewId::Log.index()],
        |i| event_cells(s, i, true),
    );
}

/// Columns of the live tail (`full` = false in `event_cells`).
pub fn tail_columns() -> [Col; 10] {
    [
        col("time", Constraint::Length(12)),
        col("result", Constraint::Length(6)),
        wide("code", Constraint::Length(4), 100),
        col("identity", Constraint::Fill(3)),
        col("via", Constraint::Length(5)),
        wide("ip", Constraint::Length(15), 120),
        col("cc", Constraint::Length(2)),
        wide("app", Constraint::Fill(2), 100),
        col("request", Constraint::Fill(3)),
        col("reason", Constraint::Fill(2)),
    ]
}

/// Columns of the Log view (`full` = true in `event_cells`); a node column after the time when
/// events come from several gates (`console --attach A --attach B`).
pub fn log_columns(several_nodes: bool) -> Vec<Col> {
    let mut cols = vec![
        col("time", Constraint::Length(12)),
        wide("kind", Constraint::Length(6), 120),
        col("result", Constraint::Length(6)),
        wide("code", Constraint::Length(4), 100),
        col("identity", Constraint::Fill(3)),
        col("via", Constraint::Length(5)),
        wide("ip", Constraint::Length(15), 120),
        col("cc", Constraint::Length(2)),
        wide("app", Constraint::Fill(2), 100),
        col("request", Constraint::Fill(3)),
        col("reason", Constraint::Fill(2)),
        wide("ms", Constraint::Length(6), 140),
        wide("ray", Constraint::Length(16), 140),
    ];
    if several_nodes {
        cols.insert(1, col("node", Constraint::Length(10)));
    }
    cols
}

/// The short connection-method label used in tables.
pub fn via(m: ConnectionMethod) -> &'static str {
    match m {
        ConnectionMethod::ServiceToken => "token",
        ConnectionMethod::Mtls => "mtls",
        ConnectionMethod::Oidc => "oidc",
        ConnectionMethod::None => "-",
    }
}

/// `allow`/`deny`/… for access events; `alert`/`admin` for the others.
fn result(e: &AccessEvent) -> String {
    match e.event {
        EventKind::Access if e.decision.is_empty() => {
            if e.allowed { "allow" } else { "deny" }.to_string()
        }
        EventKind::Access => e.decision.clone(),
        EventKind::Alert => "alert".into(),
        EventKind::Admin => "admin".into(),
    }
}

/// What the request column says: `GET /path`, or an alert's title, or an admin action.
fn request(e: &AccessEvent) -> String {
    let detail = |k: &str| {
        e.details
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    match e.event {
        EventKind::Alert => detail("title").unwrap_or_else(|| e.decision.clone()),
        EventKind::Admin => format!("{} {}", e.decision, detail("target").unwrap_or_default())
            .trim()
            .to_string(),
        EventKind::Access => match (&e.method, &e.path) {
            (Some(m), Some(p)) => format!("{m} {p}"),
            (None, Some(p)) => p.clone(),
            (Some(m), None) => m.clone(),
            (None, None) => "-".into(),
        },
    }
}

/// Cells of the `i`-th newest event; `full` adds the Log view's extra columns.
pub fn event_cells<'a>(s: &AppState, i: usize, full: bool) -> (Vec<Line<'a>>, Style) {
    let t = &s.theme;
    // The whole event, rebuilt from the ring's compact form (a screenful per frame).
    let Some(e) = rows::log_event(s, i).map(|e| e.to_event()) else {
        return (Vec::new(), t.base());
    };
    let result_style = match e.event {
        EventKind::Access => t.decision(e.allowed),
        EventKind::Alert => {
            let sev = e
                .details
                .as_ref()
                .and_then(|d| d.get("severity"))
                .and_then(|v| v.as_str());
            t.severity(if sev == Some("critical") {
                crate::console::alerts::Severity::Critical
            } else {
                crate::console::alerts::Severity::Warning
            })
        }
        EventKind::Admin => t.muted(),
    };
    let mut cells = vec![Line::from(Span::styled(clock_ms(e.created_at), t.muted()))];
    if full && s.shown_traffic().several_nodes() {
        cells.push(Line::from(or_dash(e.node.as_deref())));
    }
    if full {
        cells.push(Line::from(kind(e.event)));
    }
    cells.extend([
        Line::from(Span::styled(result(&e), result_style)),
        Line::from(e.status.map_or("-".to_string(), |s| s.to_string())),
        Line::from(or_dash(e.identity())),
        Line::from(via(e.connection_method)),
        Line::from(or_dash(e.ip_address.as_deref())),
        Line::from(or_dash(e.country.as_deref())),
        Line::from(or_dash(e.app_name.as_deref().or(e.host.as_deref()))),
        Line::from(request(&e)),
        Line::from(Span::styled(
            or_dash(e.deny_reason.as_deref()),
            t.decision(false),
        )),
    ]);
    if full {
        cells.push(Line::from(
            e.latency_ms
                .map_or("-".to_string(), |ms| format!("{ms:.1}")),
        ));
        cells.push(Line::from(Span::styled(e.ray_id.clone(), t.muted())));
    }
    (cells, t.base())
}

fn kind(k: EventKind) -> &'static str {
    match k {
        EventKind::Access => "access",
        EventKind::Admin => "admin",
        EventKind::Alert => "alert",
    }
}
