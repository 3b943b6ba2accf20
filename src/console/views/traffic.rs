//! View 1, Traffic: requests/s allowed vs denied, the split by connection method, the identities
//! table, and the live tail (filtered by `/`). Reads only bucketed aggregates and the visible
//! slice of the ring, so a frame costs the same at any traffic volume.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline};

use crate::console::aggregate::{Bucket, METHODS, method_index};
use crate::console::app::{AppState, ViewId};
use crate::console::request_latency;
use crate::console::rows;
use crate::console::window::{self, Columns};

use super::widgets::{self, Col, block, col, title, wide, windowed_table};

/// Apps the latency panel lists at most (the busiest).
const LATENCY_APPS: usize = 4;
/// The latency panel is drawn in a view body at least this tall.
const LATENCY_MIN_BODY: u16 = 36;

/// Seconds averaged for the rates shown beside the charts.
const RATE_SECS: usize = 5;

/// Where the Traffic view's parts go (also used by the mouse hit-test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficLayout {
    pub rate: Rect,
    pub methods: Rect,
    /// Latency per app, when the terminal is tall enough and requests carried a latency.
    pub latency: Option<Rect>,
    pub identities: Rect,
    pub tail: Rect,
}

/// The Traffic view's layout in `area`.
pub fn layout(area: Rect, s: &AppState) -> TrafficLayout {
    // The identities table takes what its rows need (up to 45 %); the live tail gets the rest.
    let want = u16::try_from(rows::row_count(s, ViewId::Traffic))
        .unwrap_or(u16::MAX)
        .saturating_add(3)
        .max(6);
    let apps = s.shown_traffic().latency.len().min(LATENCY_APPS);
    let latency_height = if apps > 0 && area.height >= LATENCY_MIN_BODY {
        apps as u16 + 2
    } else {
        0
    };
    let rest = area.height.saturating_sub(8 + latency_height);
    let ids_height = want.min(rest * 45 / 100).max(6);
    let [charts, latency, identities, tail] = Layout::vertical([
        Constraint::Length(8),
        Constraint::Length(latency_height),
        Constraint::Length(ids_height),
        Constraint::Min(5),
    ])
    .areas(area);
    let latency = (latency_height > 0).then_some(latency);
    let [rate, methods] =
        Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)]).areas(charts);
    TrafficLayout {
        rate,
        methods,
        latency,
        identities,
        tail,
    }
}

pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let l = layout(area, s);
    draw_rate(frame, l.rate, s);
    draw_methods(frame, l.methods, s);
    if let Some(area) = l.latency {
        draw_latency(frame, area, s);
    }
    draw_identities(frame, l.identities, s);
    draw_tail(frame, l.tail, s);
}

/// Columns of the chart beside its labels in a chart block `width` wide.
fn chart_width(width: u16) -> u16 {
    width.saturating_sub(2 + LABEL_WIDTH)
}

/// Label column beside the charts.
const LABEL_WIDTH: u16 = 16;

/// Seconds the chart spans with no window selected, in a chart block `width` wide: one per
/// column, at most the per-second history.
pub fn auto_secs(width: u16, s: &AppState) -> i64 {
    usize::from(chart_width(width)).min(s.shown_traffic().seconds.window()) as i64
}

/// The chart's columns, `width` at most: the selected window, or one second per column.
fn columns(s: &AppState, width: u16) -> Columns {
    let secs = match s.time.window {
        Some(w) => w.secs(),
        None => usize::from(width).min(s.shown_traffic().seconds.window()) as i64,
    };
    window::columns(
        s.shown_traffic(),
        s.shown_now().timestamp(),
        secs,
        usize::from(width),
    )
}

/// The right-most `n` columns of `area` (the chart ends at its right edge).
fn right(area: Rect, n: usize) -> Rect {
    let w = u16::try_from(n).unwrap_or(u16::MAX).min(area.width);
    Rect {
        x: area.right() - w,
        width: w,
        ..area
    }
}

/// Mark the cursor's columns in `areas` (reverse video, so a colourless theme shows it too).
fn draw_cursor(frame: &mut Frame, areas: &[Rect], cols: &Columns, s: &AppState) {
    let (Some(w), Some(c)) = (s.time.window, s.time.cursor) else {
        return;
    };
    let at = cols.overlapping(c, c + w.step());
    let style = s.theme.selection();
    for area in areas {
        let chart = right(*area, cols.buckets.len());
        for i in at.clone() {
            let x = chart.x + i as u16;
            for y in chart.top()..chart.bottom() {
                if let Some(cell) = frame.buffer_mut().cell_mut((x, y)) {
                    cell.set_style(style);
                }
            }
        }
    }
}

/// `12/s`, or `0.4/s` when the rate is not whole.
fn per_sec(rate: f64) -> String {
    if rate.fract() == 0.0 {
        format!("{rate:.0}/s")
    } else {
        format!("{rate:.1}/s")
    }
}

fn draw_rate(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let [_, chart_cols] = Layout::horizontal([Constraint::Length(LABEL_WIDTH), Constraint::Min(0)])
        .areas(block(t, "").inner(area));
    let cols = columns(s, chart_cols.width);
    // Requests over a rate limit (429s, and shadow mode's would-be 429s) get their own series
    // while any are in the window, so the chart keeps its height when nothing is limited.
    let any_limited = cols.buckets.iter().any(|b| b.rate_limited > 0);
    let mut parts = vec![match s.time.window {
        Some(w) if cols.span > 1 => {
            format!("last {} · {}/column", w.label(), span_label(cols.span))
        }
        Some(w) => format!("last {}", w.label()),
        None => format!("last {}", window_label(cols.buckets.len())),
    }];
    if let Some(label) = s.interval_title().filter(|_| s.time.cursor.is_some()) {
        parts.push(format!("cursor {label}"));
    }
    parts.push(
        if any_limited {
            "allowed vs denied vs rate limited"
        } else {
            "allowed vs denied"
        }
        .into(),
    );
    let blk = block(t, title(t, "requests/s", &parts));
    let inner = blk.inner(area);
    frame.render_widget(blk, area);
    let [labels, chart] =
        Layout::horizontal([Constraint::Length(LABEL_WIDTH), Constraint::Min(0)]).areas(inner);
    let end = s.shown_now().timestamp() - 1;
    let allowed_rate = rate_of(s, end, |b| b.allowed);
    let denied_rate = rate_of(s, end, |b| b.denied);
    let limited_rate = rate_of(s, end, |b| b.rate_limited);
    // Each series has its own scale (labelled), so a handful of denials stays visible next to
    // thousands of allowed requests.
    let allowed: Vec<u64> = cols.buckets.iter().map(|b| u64::from(b.allowed)).collect();
    let denied: Vec<u64> = cols.buckets.iter().map(|b| u64::from(b.denied)).collect();
    let max_allowed = allowed.iter().copied().max().unwrap_or(0).max(1);
    let max_denied = denied.iter().copied().max().unwrap_or(0).max(1);
    let limited: Vec<u64> = cols
        .buckets
        .iter()
        .map(|b| u64::from(b.rate_limited))
        .collect();
    let max_limited = limited.iter().copied().max().unwrap_or(0).max(1);
    let rows = if any_limited { 3 } else { 2 };
    let charts = Layout::vertical(vec![Constraint::Fill(1); rows]).split(chart);
    let label_areas = Layout::vertical(vec![Constraint::Fill(1); rows]).split(labels);
    let mut series = vec![
        (label_areas[0], "allowed", true, allowed_rate, max_allowed),
        (label_areas[1], "denied", false, denied_rate, max_denied),
    ];
    if any_limited {
        series.push((
            label_areas[2],
            "rate limited",
            false,
            limited_rate,
            max_limited,
        ));
    }
    for (area, name, allowed_side, rate, max) in series {
        frame.render_widget(
            Paragraph::new(vec![
                Line::styled(name, t.decision(allowed_side)),
                Line::styled(format!("{rate:.1}/s"), t.base()),
                Line::styled(format!("max {}", per_sec(cols.rate(max))), t.muted()),
            ]),
            area,
        );
    }
    let n = cols.buckets.len();
    frame.render_widget(
        Sparkline::default()
            .data(&allowed)
            .max(max_allowed)
            .style(t.decision(true)),
        right(charts[0], n),
    );
    frame.render_widget(
        Sparkline::default()
            .data(&denied)
            .max(max_denied)
            .style(t.decision(false)),
        right(charts[1], n),
    );
    if any_limited {
        frame.render_widget(
            Sparkline::default()
                .data(&limited)
                .max(max_limited)
                .style(t.status(crate::expiry::CredentialStatus::Warn)),
            right(charts[2], n),
        );
    }
    draw_cursor(frame, &charts, &cols, s);
}

fn rate_of(s: &AppState, end: i64, f: impl Fn(&Bucket) -> u32) -> f64 {
    let sum: u64 = s
        .shown_traffic()
        .seconds
        .series(end, RATE_SECS)
        .map(|b| u64::from(f(&b)))
        .sum();
    sum as f64 / RATE_SECS as f64
}

/// `45s`, `5m`, `18m`.
fn span_label(secs: i64) -> String {
    if secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

fn window_label(secs: usize) -> String {
    match (secs / 60, secs % 60) {
        (m, 0) if secs >= 120 => format!("{m}m"),
        (m, s) if secs >= 120 => format!("{m}m{s}s"),
        _ => format!("{secs}s"),
    }
}

fn draw_methods(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let blk = block(t, title(t, "by connection method", &[]));
    let inner = blk.inner(area);
    frame.render_widget(blk, area);
    // The methods that carried traffic (all but OIDC when none did), two rows each, or one
    // row each when they do not fit so.
    let totals = &s.shown_traffic().totals.by_method;
    let mut shown: Vec<usize> = (0..METHODS.len()).filter(|&i| totals[i] > 0).collect();
    if shown.is_empty() {
        shown = (0..METHODS.len())
            .filter(|&i| METHODS[i] != crate::audit::ConnectionMethod::Oidc)
            .collect();
    }
    let tall = shown.len() * 2 <= usize::from(inner.height);
    let rows = Layout::vertical(vec![
        Constraint::Length(if tall { 2 } else { 1 });
        shown.len()
    ])
    .split(inner);
    let label_w = 22;
    let end = s.shown_now().timestamp() - 1;
    for (row, &i) in shown.iter().enumerate() {
        let m = &METHODS[i];
        let Some(r) = rows.get(row).copied() else {
            break;
        };
        let [label, chart] =
            Layout::horizontal([Constraint::Length(label_w), Constraint::Min(0)]).areas(r);
        let rate = rate_of(s, end, |b| b.by_method[i]);
        let total = totals[i];
        let figures = vec![
            Span::styled(format!("{rate:.1}/s "), t.base()),
            Span::styled(format!("{total} total"), t.muted()),
        ];
        let text = match tall {
            true => vec![Line::styled(m.as_str(), t.method(i)), Line::from(figures)],
            false => {
                let mut one = vec![Span::styled(format!("{} ", m.as_str()), t.method(i))];
                one.extend(figures.into_iter().take(1));
                vec![Line::from(one)]
            }
        };
        frame.render_widget(Paragraph::new(text), label);
        let cols = columns(s, chart.width);
        let data: Vec<u64> = cols
            .buckets
            .iter()
            .map(|b| u64::from(b.by_method[i]))
            .collect();
        let area = right(chart, data.len());
        frame.render_widget(Sparkline::default().data(&data).style(t.method(i)), area);
        draw_cursor(frame, &[area], &cols, s);
    }
}

/// Per app: p50 and p99 now (over the hour) and per minute for the last hour, busiest first.
fn draw_latency(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let all = s.shown_traffic().latency.series(s.shown_now().timestamp());
    let mut parts = vec![
        "p50 / p99 per minute".to_string(),
        format!("last {}m", request_latency::MINUTES),
    ];
    if all.len() > LATENCY_APPS {
        parts.push(format!("busiest {LATENCY_APPS} of {}", all.len()));
    }
    let blk = block(t, title(t, "latency by app", &parts));
    let inner = blk.inner(area);
    frame.render_widget(blk, area);
    let n = all.len().min(LATENCY_APPS).min(usize::from(inner.height));
    let lines = Layout::vertical(vec![Constraint::Length(1); n]).split(inner);
    for (app, line) in all.iter().zip(lines.iter()) {
        let [name, p50_label, p50_chart, p99_label, p99_chart] = Layout::horizontal([
            Constraint::Fill(1),
            Constraint::Length(14),
            Constraint::Fill(2),
            Constraint::Length(14),
            Constraint::Fill(2),
        ])
        .spacing(1)
        .areas(*line);
        frame.render_widget(Paragraph::new(Line::styled(&*app.app, t.base())), name);
        let warn = t.status(crate::expiry::CredentialStatus::Warn);
        for (q, label, chart, which, overall, style) in [
            (
                "p50",
                p50_label,
                p50_chart,
                &app.p50,
                app.overall_p50,
                t.decision(true),
            ),
            ("p99", p99_label, p99_chart, &app.p99, app.overall_p99, warn),
        ] {
            let text = overall.map_or("-".into(), request_latency::format_ms);
            frame.render_widget(
                Paragraph::new(Line::from(vec![
                    Span::styled(format!("{q} "), t.muted()),
                    Span::styled(text, t.base()),
                ]))
                .right_aligned(),
                label,
            );
            // The newest minutes that fit, ending at the right edge; hundredths of a ms, so a
            // fast app's shape still shows.
            let n = usize::from(chart.width).min(which.len());
            let data: Vec<Option<u64>> = which[which.len() - n..]
                .iter()
                .map(|v| v.map(|ms| (ms * 100.0).round() as u64))
                .collect();
            frame.render_widget(
                Sparkline::default()
                    .data(data)
                    .absent_value_symbol(" ")
                    .style(style),
                right(chart, n),
            );
        }
    }
}

/// The identities table's columns.
pub fn identity_cols() -> [Col; 8] {
    [
        col("identity", Constraint::Fill(3)),
        col("via", Constraint::Length(5)),
        col("req/min", Constraint::Length(7)),
        col("deny %", Constraint::Length(6)),
        wide("total", Constraint::Length(8), 120),
        col("last seen", Constraint::Length(9)),
        col("countries", Constraint::Length(14)),
        wide("apps", Constraint::Fill(2), 120),
    ]
}

fn draw_identities(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let list = rows::identities(s);
    let sel = s.selected[ViewId::Traffic.index()];
    let mut parts = vec![
        format!("{}", list.len()),
        s.interval_title().unwrap_or_default(),
        format!("sort {}", s.sort_label(ViewId::Traffic)),
    ];
    if s.shown_traffic().identities.evicted > 0 {
        parts.push(format!(
            "{} idle dropped",
            s.shown_traffic().identities.evicted
        ));
    }
    let now_sec = s.shown_end_sec();
    super::columns::view_table(
        frame,
        area,
        s,
        ViewId::Traffic,
        block(t, title(t, "identities", &parts)),
        &identity_cols(),
        list.len(),
        Some(sel),
        s.scroll[ViewId::Traffic.index()],
        |i| {
            let id = list[i];
            let deny = id.deny_pct();
            let cells = vec![
                Line::from(id.name.clone()),
                Line::from(Span::styled(
                    super::log::via(id.method),
                    t.method(method_index(id.method)),
                )),
                Line::from(id.per_minute(now_sec).to_string()).right_aligned(),
                Line::styled(
                    format!("{deny:.1}"),
                    if id.denied > 0 {
                        t.decision(false)
                    } else {
                        t.base()
                    },
                )
                .right_aligned(),
                Line::from(id.total.to_string()).right_aligned(),
                Line::from(widgets::seen(s.now, Some(id.last_seen))),
                Line::from(id.countries.joined()),
                Line::from(id.apps.joined()),
            ];
            (cells, t.base())
        },
    );
}

fn draw_tail(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let n = rows::log_len(s);
    let mut parts = vec![format!("{n} in buffer")];
    if let Some(when) = s.interval_title() {
        parts.push(when);
    }
    if !s.filter.is_empty() {
        parts.push(format!("filter {}", s.filter.text()));
    }
    windowed_table(
        frame,
        area,
        t,
        block(t, title(t, "live tail", &parts)),
        &super::log::tail_columns(),
        n,
        None,
        0,
        |i| super::log::event_cells(s, i, false),
    );
}
