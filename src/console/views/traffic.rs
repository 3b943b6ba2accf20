//! View 1, Traffic: requests/s allowed vs denied, the split by connection method, the identities
//! table, and the live tail (filtered by `/`). Reads only bucketed aggregates and the visible
//! slice of the ring, so a frame costs the same at any traffic volume.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Sparkline};

use crate::console::aggregate::{Bucket, METHODS};
use crate::console::app::{AppState, ViewId};
use crate::console::rows;

use super::widgets::{self, block, title, windowed_table};

/// Seconds averaged for the rates shown beside the charts.
const RATE_SECS: usize = 5;

pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let [charts, ids, tail] = Layout::vertical([Constraint::Length(8), Constraint::Percentage(45), Constraint::Min(5)]).areas(area);
    let [rate, methods] = Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)]).areas(charts);
    draw_rate(frame, rate, s);
    draw_methods(frame, methods, s);
    draw_identities(frame, ids, s);
    draw_tail(frame, tail, s);
}

/// The buckets for the chart: one per column, ending at the current second.
fn series(s: &AppState, width: u16) -> Vec<Bucket> {
    s.traffic.seconds.series(s.now.timestamp(), usize::from(width)).collect()
}

fn draw_rate(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let secs = usize::from(area.width.saturating_sub(2 + 16)).min(s.traffic.seconds.window());
    let blk = block(t, title(t, "requests/s", &[format!("last {}", window_label(secs)), "allowed vs denied".into()]));
    let inner = blk.inner(area);
    frame.render_widget(blk, area);
    let [labels, chart] = Layout::horizontal([Constraint::Length(16), Constraint::Min(0)]).areas(inner);
    let data = series(s, chart.width);
    let end = s.now.timestamp() - 1;
    let allowed_rate = rate_of(s, end, |b| b.allowed);
    let denied_rate = rate_of(s, end, |b| b.denied);
    let max = data.iter().map(|b| u64::from(b.allowed.max(b.denied))).max().unwrap_or(0).max(1);
    let [top, bottom] = Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(chart);
    let [ltop, lbottom] = Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(labels);
    frame.render_widget(
        Paragraph::new(vec![
            Line::styled("allowed", t.decision(true)),
            Line::styled(format!("{allowed_rate:.1}/s"), t.base()),
            Line::styled(format!("max {max}/s"), t.muted()),
        ]),
        ltop,
    );
    frame.render_widget(
        Paragraph::new(vec![Line::styled("denied", t.decision(false)), Line::styled(format!("{denied_rate:.1}/s"), t.base())]),
        lbottom,
    );
    let allowed: Vec<u64> = data.iter().map(|b| u64::from(b.allowed)).collect();
    let denied: Vec<u64> = data.iter().map(|b| u64::from(b.denied)).collect();
    frame.render_widget(Sparkline::default().data(&allowed).max(max).style(t.decision(true)), top);
    frame.render_widget(Sparkline::default().data(&denied).max(max).style(t.decision(false)), bottom);
}

fn rate_of(s: &AppState, end: i64, f: impl Fn(&Bucket) -> u32) -> f64 {
    let sum: u64 = s.traffic.seconds.series(end, RATE_SECS).map(|b| u64::from(f(&b))).sum();
    sum as f64 / RATE_SECS as f64
}

fn window_label(secs: usize) -> String {
    if secs >= 120 { format!("{}m{}", secs / 60, if secs % 60 == 0 { String::new() } else { format!("{}s", secs % 60) }) } else { format!("{secs}s") }
}

fn draw_methods(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let blk = block(t, title(t, "by connection method", &[]));
    let inner = blk.inner(area);
    frame.render_widget(blk, area);
    let rows = Layout::vertical([Constraint::Length(2); 3]).split(inner);
    let label_w = 22;
    let end = s.now.timestamp() - 1;
    for (i, m) in METHODS.iter().enumerate() {
        let Some(r) = rows.get(i).copied() else { break };
        let [label, chart] = Layout::horizontal([Constraint::Length(label_w), Constraint::Min(0)]).areas(r);
        let rate = rate_of(s, end, |b| b.by_method[i]);
        let total = s.traffic.totals.by_method[i];
        frame.render_widget(
            Paragraph::new(vec![
                Line::styled(m.as_str(), t.method(i)),
                Line::from(vec![Span::styled(format!("{rate:.1}/s "), t.base()), Span::styled(format!("{total} total"), t.muted())]),
            ]),
            label,
        );
        let data: Vec<u64> = series(s, chart.width).iter().map(|b| u64::from(b.by_method[i])).collect();
        frame.render_widget(Sparkline::default().data(&data).style(t.method(i)), chart);
    }
}

fn draw_identities(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let list = rows::identities(s);
    let sel = s.selected[ViewId::Traffic.index()];
    let mut parts = vec![format!("{}", list.len()), format!("sort {}", s.sort_label(ViewId::Traffic))];
    if s.traffic.identities.evicted > 0 {
        parts.push(format!("{} idle dropped", s.traffic.identities.evicted));
    }
    let now_sec = s.now.timestamp();
    windowed_table(
        frame,
        area,
        t,
        block(t, title(t, "identities", &parts)),
        &["identity", "method", "req/min", "deny %", "total", "last seen", "countries", "apps"],
        &[
            Constraint::Fill(3),
            Constraint::Length(13),
            Constraint::Length(7),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(14),
            Constraint::Fill(2),
        ],
        list.len(),
        Some(sel),
        |i| {
            let id = list[i];
            let deny = id.deny_pct();
            Row::new(vec![
                Cell::from(id.name.clone()),
                Cell::from(Span::styled(id.method.as_str(), t.method(crate::console::aggregate::method_index(id.method)))),
                Cell::from(Line::from(id.per_minute(now_sec).to_string()).right_aligned()),
                Cell::from(Line::styled(format!("{deny:.1}"), if id.denied > 0 { t.decision(false) } else { t.base() }).right_aligned()),
                Cell::from(Line::from(id.total.to_string()).right_aligned()),
                Cell::from(widgets::seen(s.now, Some(id.last_seen))),
                Cell::from(id.countries.joined()),
                Cell::from(id.apps.joined()),
            ])
        },
    );
}

fn draw_tail(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let n = rows::log_len(s);
    let mut parts = vec![format!("{n} in buffer")];
    if !s.filter.is_empty() {
        parts.push(format!("filter {}", s.filter.text()));
    }
    windowed_table(
        frame,
        area,
        t,
        block(t, title(t, "live tail", &parts)),
        &["time", "result", "code", "identity", "via", "ip", "cc", "app", "request", "reason"],
        &[
            Constraint::Length(12),
            Constraint::Length(6),
            Constraint::Length(4),
            Constraint::Fill(3),
            Constraint::Length(5),
            Constraint::Length(15),
            Constraint::Length(2),
            Constraint::Fill(2),
            Constraint::Fill(3),
            Constraint::Fill(2),
        ],
        n,
        None,
        |i| super::log::event_row(s, i, false),
    );
}
