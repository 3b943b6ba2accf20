//! View 7, Log: the raw audit events in the ring buffer, newest first, scrollable; Enter opens
//! the whole event. Also draws the rows of the Traffic view's live tail.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row};

use crate::audit::{AccessEvent, ConnectionMethod, EventKind};
use crate::console::app::{AppState, ViewId};
use crate::console::rows;

use super::widgets::{block, clock_ms, or_dash, title, windowed_table};

pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let n = rows::log_len(s);
    let mut parts = vec![format!("{n} of {} kept", s.traffic.ring.capacity()), format!("{} seen", s.traffic.totals.events)];
    if !s.filter.is_empty() {
        parts.push(format!("filter {}", s.filter.text()));
    }
    windowed_table(
        frame,
        area,
        t,
        block(t, title(t, "audit log", &parts)),
        &["time", "kind", "result", "code", "identity", "via", "ip", "cc", "app", "request", "reason", "ms", "ray"],
        &[
            Constraint::Length(12),
            Constraint::Length(6),
            Constraint::Length(7),
            Constraint::Length(4),
            Constraint::Fill(3),
            Constraint::Length(5),
            Constraint::Length(15),
            Constraint::Length(2),
            Constraint::Fill(2),
            Constraint::Fill(3),
            Constraint::Fill(2),
            Constraint::Length(6),
            Constraint::Length(16),
        ],
        n,
        Some(s.selected[ViewId::Log.index()]),
        |i| event_row(s, i, true),
    );
}

fn via(m: ConnectionMethod) -> &'static str {
    match m {
        ConnectionMethod::ServiceToken => "token",
        ConnectionMethod::Mtls => "mtls",
        ConnectionMethod::None => "-",
    }
}

fn result(e: &AccessEvent) -> String {
    match e.event {
        EventKind::Access if e.decision.is_empty() => if e.allowed { "allow" } else { "deny" }.to_string(),
        _ => e.decision.clone(),
    }
}

/// The `i`-th newest event as a row; `full` adds the Log view's extra columns.
pub fn event_row<'a>(s: &AppState, i: usize, full: bool) -> Row<'a> {
    let t = &s.theme;
    let Some(e) = rows::log_event(s, i) else { return Row::new(Vec::<Cell>::new()) };
    let decision_style = match e.event {
        EventKind::Access => t.decision(e.allowed),
        EventKind::Alert => t.severity(crate::console::alerts::Severity::Warning),
        EventKind::Admin => t.muted(),
    };
    let request = match (&e.method, &e.path) {
        (Some(m), Some(p)) => format!("{m} {p}"),
        (None, Some(p)) => p.clone(),
        (Some(m), None) => m.clone(),
        (None, None) => "-".into(),
    };
    let app = or_dash(e.app_name.as_deref().or(e.host.as_deref()));
    let identity = or_dash(e.identity());
    let mut cells = vec![Cell::from(Span::styled(clock_ms(e.created_at), t.muted()))];
    if full {
        cells.push(Cell::from(kind(e.event)));
    }
    cells.extend([
        Cell::from(Span::styled(result(e), decision_style)),
        Cell::from(e.status.map_or("-".to_string(), |s| s.to_string())),
        Cell::from(identity),
        Cell::from(via(e.connection_method)),
        Cell::from(or_dash(e.ip_address.as_deref())),
        Cell::from(or_dash(e.country.as_deref())),
        Cell::from(app),
        Cell::from(request),
        Cell::from(Span::styled(or_dash(e.deny_reason.as_deref()), t.decision(false))),
    ]);
    if full {
        cells.push(Cell::from(e.latency_ms.map_or("-".to_string(), |ms| format!("{ms:.1}"))));
        cells.push(Cell::from(Span::styled(e.ray_id.clone(), t.muted())));
    }
    Row::new(cells)
}

fn kind(k: EventKind) -> &'static str {
    match k {
        EventKind::Access => "access",
        EventKind::Admin => "admin",
        EventKind::Alert => "alert",
    }
}
