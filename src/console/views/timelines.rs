//! Small pictures under the inventory and alert tables, drawn when the terminal is tall enough
//! for the table's rows and them: how many credentials expire per week over the next 90 days
//! (Tokens, Certs; a week holding a critical one is marked `!` and drawn in the critical
//! colour), and alerts opened and resolved per hour over the last day (Alerts). The counts are
//! pure functions of the rows the tables show, so the pictures follow the filter; a
//! credential's class comes from the one expiry classifier (`CredentialStatus`), never from
//! dates compared here.

use chrono::{DateTime, Duration, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Bar, BarChart, BarGroup, Paragraph, Sparkline};

use crate::console::alerts::{AlertRow, AlertState};
use crate::console::app::AppState;
use crate::console::model::CredentialStatus;

use super::widgets::{block, title};

/// Weeks the expiry timeline shows (13 weeks: the next 90 days and a day).
pub const WEEKS: usize = 13;
/// Lines the expiry timeline takes, borders included.
pub const EXPIRY_HEIGHT: u16 = 8;
/// Hours the alert timeline shows.
pub const HOURS: usize = 24;
/// Lines the alert timeline takes, borders included.
pub const ALERTS_HEIGHT: u16 = 5;

/// A table's area and, when the terminal is tall enough for the table's `rows` and the
/// picture of `height` lines, the picture's area below it.
pub fn split(area: Rect, rows: usize, height: u16) -> (Rect, Option<Rect>) {
    let table = u16::try_from(rows).unwrap_or(u16::MAX).saturating_add(3);
    if area.height < table.saturating_add(height) {
        return (area, None);
    }
    let [table, picture] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(height)]).areas(area);
    (table, Some(picture))
}

/// Credentials expiring in one week.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Week {
    pub count: usize,
    /// The most urgent class among them (Ok when none).
    pub worst: Option<CredentialStatus>,
}

/// Credentials by the week they expire in, from now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryWeeks {
    pub weeks: [Week; WEEKS],
    /// Already expired (not revoked or disabled).
    pub expired: usize,
    /// Critical now (≤ 7 days), counted in their weeks too.
    pub critical: usize,
}

/// Count `(expires_at, status at now)` pairs by week; revoked and disabled credentials no
/// longer expire, so they are left out.
pub fn expiry_weeks(
    now: DateTime<Utc>,
    creds: impl Iterator<Item = (DateTime<Utc>, CredentialStatus)>,
) -> ExpiryWeeks {
    let mut out = ExpiryWeeks {
        weeks: [Week::default(); WEEKS],
        expired: 0,
        critical: 0,
    };
    for (at, status) in creds {
        match status {
            CredentialStatus::Revoked | CredentialStatus::Disabled => continue,
            CredentialStatus::Expired => {
                out.expired += 1;
                continue;
            }
            CredentialStatus::Critical => out.critical += 1,
            CredentialStatus::Ok | CredentialStatus::Warn => {}
        }
        let week = (at - now).num_seconds().max(0) / Duration::weeks(1).num_seconds();
        if let Some(w) = usize::try_from(week)
            .ok()
            .and_then(|w| out.weeks.get_mut(w))
        {
            w.count += 1;
            w.worst = w.worst.max(Some(status));
        }
    }
    out
}

/// The expiry timeline of `creds` in `area`.
pub fn draw_expiry(
    frame: &mut Frame,
    area: Rect,
    s: &AppState,
    creds: impl Iterator<Item = (DateTime<Utc>, CredentialStatus)>,
) {
    let t = &s.theme;
    let weeks = expiry_weeks(s.now, creds);
    let mut parts = vec!["next 90 days".to_string()];
    if weeks.critical > 0 {
        parts.push(format!("{} critical (!)", weeks.critical));
    }
    if weeks.expired > 0 {
        parts.push(format!("{} expired already", weeks.expired));
    }
    let blk = block(t, title(t, "expiring per week", &parts));
    let inner = blk.inner(area);
    frame.render_widget(blk, area);
    let bar_width = (inner.width.saturating_sub(WEEKS as u16) / WEEKS as u16).max(1);
    let bars: Vec<Bar> = weeks
        .weeks
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let status = w.worst.unwrap_or(CredentialStatus::Ok);
            let start = s.now + Duration::weeks(i as i64);
            let mark = if status == CredentialStatus::Critical {
                "!"
            } else {
                ""
            };
            Bar::default()
                .value(w.count as u64)
                .text_value(format!("{}{mark}", w.count))
                .label(Line::from(start.format("%m-%d").to_string()))
                .style(if w.count == 0 {
                    t.muted()
                } else {
                    t.status(status)
                })
                .value_style(t.selection())
        })
        .collect();
    frame.render_widget(
        BarChart::default()
            .data(BarGroup::default().bars(&bars))
            .bar_width(bar_width)
            .bar_gap(1)
            .label_style(t.muted()),
        inner,
    );
}

/// Alerts opened and resolved per hour over the last `HOURS`, oldest first.
pub fn alert_hours(now: DateTime<Utc>, rows: &[&AlertRow]) -> ([u64; HOURS], [u64; HOURS]) {
    let (mut opened, mut resolved) = ([0u64; HOURS], [0u64; HOURS]);
    let slot = |at: DateTime<Utc>| {
        let ago = (now - at).num_seconds();
        (0..HOURS as i64 * 3600)
            .contains(&ago)
            .then(|| HOURS - 1 - (ago / 3600) as usize)
    };
    for a in rows {
        if let Some(i) = slot(a.first_seen) {
            opened[i] += 1;
        }
        // A resolved row's last update is its resolution.
        if a.state == AlertState::Resolved
            && let Some(i) = slot(a.last_seen)
        {
            resolved[i] += 1;
        }
    }
    (opened, resolved)
}

/// The alert timeline of `rows` in `area`.
pub fn draw_alerts(frame: &mut Frame, area: Rect, s: &AppState, rows: &[&AlertRow]) {
    let t = &s.theme;
    let (opened, resolved) = alert_hours(s.now, rows);
    let (o, r): (u64, u64) = (opened.iter().sum(), resolved.iter().sum());
    let blk = block(
        t,
        title(
            t,
            "alerts per hour",
            &[
                "last 24h".into(),
                format!("{o} opened"),
                format!("{r} resolved"),
            ],
        ),
    );
    let inner = blk.inner(area);
    frame.render_widget(blk, area);
    let [labels, charts] =
        Layout::horizontal([Constraint::Length(10), Constraint::Min(0)]).areas(inner);
    // One column per hour, stretched over the width (each hour as wide as the others) and
    // ending at the right edge, where `now` is written.
    let per = (usize::from(charts.width) / HOURS).max(1);
    let w = u16::try_from(per * HOURS)
        .unwrap_or(u16::MAX)
        .min(charts.width);
    let charts = Rect {
        x: charts.right() - w,
        width: w,
        ..charts
    };
    let rows = [Constraint::Length(1); 3];
    let [top, bottom, axis] = Layout::vertical(rows).areas(charts);
    let [l_top, l_bottom, _] = Layout::vertical(rows).areas(labels);
    frame.render_widget(
        Paragraph::new(Line::styled("opened", t.decision(false))),
        l_top,
    );
    frame.render_widget(
        Paragraph::new(Line::styled("resolved", t.decision(true))),
        l_bottom,
    );
    let widen = |v: &[u64; HOURS]| -> Vec<u64> {
        v.iter()
            .flat_map(|&n| std::iter::repeat_n(n, per))
            .collect()
    };
    let max = opened
        .iter()
        .chain(&resolved)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    frame.render_widget(
        Sparkline::default()
            .data(widen(&opened))
            .max(max)
            .style(t.decision(false)),
        top,
    );
    frame.render_widget(
        Sparkline::default()
            .data(widen(&resolved))
            .max(max)
            .style(t.decision(true)),
        bottom,
    );
    let half = usize::from(axis.width) / 2;
    let axis_text = format!(
        "{:<half$}{:<rest$}",
        "-24h",
        "-12h",
        rest = usize::from(axis.width) - half - 3
    ) + "now";
    frame.render_widget(Paragraph::new(Line::styled(axis_text, t.muted())), axis);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn credentials_fall_into_their_week_with_the_classifiers_status() {
        let n = now();
        let at = |d: Duration| (n + d, CredentialStatus::at(n + d, false, n));
        let creds = [
            at(Duration::days(3)),
            at(Duration::days(6)),
            at(Duration::days(20)),
            at(Duration::days(89)),
            at(Duration::days(200)),
            at(-Duration::days(1)),
            (n + Duration::days(2), CredentialStatus::Revoked),
        ];
        let w = expiry_weeks(n, creds.into_iter());
        assert_eq!(w.weeks[0].count, 2);
        assert_eq!(w.weeks[0].worst, Some(CredentialStatus::Critical));
        assert_eq!(w.weeks[2].count, 1);
        assert_eq!(w.weeks[2].worst, Some(CredentialStatus::Warn));
        assert_eq!(w.weeks[12].count, 1, "89 days is in week 13");
        assert_eq!(w.weeks.iter().map(|w| w.count).sum::<usize>(), 4);
        assert_eq!((w.expired, w.critical), (1, 2));
    }

    #[test]
    fn alerts_count_in_the_hour_they_opened_and_resolved() {
        let n = now();
        let row = |opened_h: i64, state, last_h: i64| AlertRow {
            id: format!("{opened_h}"),
            rule: "r".into(),
            severity: crate::console::alerts::Severity::Warning,
            title: "t".into(),
            state,
            count: 1,
            first_seen: n - Duration::minutes(opened_h * 60 + 1),
            last_seen: n - Duration::minutes(last_h * 60 + 1),
            credential: None,
            evidence: Vec::new(),
        };
        let rows = [
            row(0, AlertState::Open, 0),
            row(3, AlertState::Resolved, 1),
            row(30, AlertState::Resolved, 2),
        ];
        let refs: Vec<&AlertRow> = rows.iter().collect();
        let (opened, resolved) = alert_hours(n, &refs);
        assert_eq!(opened[HOURS - 1], 1);
        assert_eq!(opened[HOURS - 4], 1);
        assert_eq!(opened.iter().sum::<u64>(), 2, "30 h ago is before the day");
        assert_eq!(resolved[HOURS - 2], 1);
        assert_eq!(resolved[HOURS - 3], 1);
    }

    #[test]
    fn a_table_keeps_its_rows_and_the_picture_takes_what_is_left() {
        let area = Rect::new(0, 0, 100, 30);
        let (table, pic) = split(area, 5, EXPIRY_HEIGHT);
        assert_eq!((table.height, pic.map(|p| p.height)), (22, Some(8)));
        assert_eq!(split(area, 25, EXPIRY_HEIGHT), (area, None));
    }
}
