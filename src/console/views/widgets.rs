//! Drawing helpers shared by the views: themed blocks, windowed tables (only visible rows are
//! built, so a million-row ring costs what the screen shows), and short time formats.

use chrono::{DateTime, Duration, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};

use crate::console::theme::Theme;

/// The selection symbol (also visible without colours).
pub const SELECTED: &str = "▶ ";

/// A bordered block with a themed title.
/// A details text (the `Enter` window, the split pane): plain lines in a titled block.
pub fn details<'a>(theme: &Theme, title: String, lines: &'a [String]) -> Paragraph<'a> {
    let text: Vec<Line> = lines
        .iter()
        .map(|l| Line::styled(l.as_str(), theme.base()))
        .collect();
    Paragraph::new(text)
        .block(block(theme, title))
        .style(theme.base())
}

pub fn block<'a>(theme: &Theme, title: impl Into<Line<'a>>) -> Block<'a> {
    Block::bordered()
        .border_style(theme.border())
        .title(title.into().style(theme.title()))
}

/// `Title (n)` plus extra `· part` segments.
pub fn title<'a>(theme: &Theme, name: &str, parts: &[String]) -> Line<'a> {
    let mut spans = vec![Span::styled(format!(" {name} "), theme.title())];
    for p in parts.iter().filter(|p| !p.is_empty()) {
        spans.push(Span::styled(format!("· {p} "), theme.muted()));
    }
    Line::from(spans)
}

/// A table column: header, width, and the narrowest table that still shows it (so an 80-column
/// terminal drops the least important columns instead of squeezing every one).
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub header: &'static str,
    pub width: Constraint,
    pub min_table_width: u16,
}

/// A column always shown.
pub const fn col(header: &'static str, width: Constraint) -> Col {
    Col {
        header,
        width,
        min_table_width: 0,
    }
}

/// A column shown only when the table is at least `min_table_width` wide.
pub const fn wide(header: &'static str, width: Constraint, min_table_width: u16) -> Col {
    Col {
        header,
        width,
        min_table_width,
    }
}

/// Rows a bordered table of this height shows: the borders and the header row take 3.
pub fn visible_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(3)).max(1)
}

/// Screen line of a bordered table's first data row (below the top border and the header).
pub const fn first_row_y(area: Rect) -> u16 {
    area.y.saturating_add(2)
}

/// The first row shown of a table of `total` rows with `visible` on screen: the remembered
/// `scroll` position, moved just enough to keep `selected` on screen, never past the end. The
/// draw pass and the mouse hit-test both call this, so a click lands on the row drawn there.
pub fn window_offset(
    total: usize,
    selected: Option<usize>,
    scroll: usize,
    visible: usize,
) -> usize {
    let visible = visible.max(1);
    let mut offset = scroll.min(total.saturating_sub(visible));
    if let Some(sel) = selected.filter(|_| total > 0).map(|s| s.min(total - 1)) {
        if sel < offset {
            offset = sel;
        } else if sel >= offset + visible {
            offset = sel + 1 - visible;
        }
    }
    offset
}

/// A table of `total` rows of which only the visible window is built by `make_row(i)` (cells
/// for every column in `cols`, and the row style). `selected` (if any) is kept on screen and
/// drawn with the selection style and symbol; `scroll` is the first row the user last saw
/// (see `window_offset`). Fixed-width columns keep their width; the `Fill` columns share the
/// rest by what the visible rows hold (`fit_widths`), so a short identity does not take the
/// room a long list of apps needs.
#[allow(clippy::too_many_arguments)]
pub fn windowed_table<'a>(
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
    block: Block<'a>,
    cols: &[Col],
    total: usize,
    selected: Option<usize>,
    scroll: usize,
    mut make_row: impl FnMut(usize) -> (Vec<Line<'a>>, Style),
) {
    let shown: Vec<bool> = cols
        .iter()
        .map(|c| area.width >= c.min_table_width)
        .collect();
    let visible = visible_rows(area.height);
    let sel = selected.filter(|_| total > 0).map(|s| s.min(total - 1));
    let offset = window_offset(total, sel, scroll, visible);
    let cols: Vec<&Col> = cols
        .iter()
        .zip(&shown)
        .filter(|(_, s)| **s)
        .map(|(c, _)| c)
        .collect();
    let mut wants: Vec<usize> = cols.iter().map(|c| c.header.chars().count()).collect();
    let rows: Vec<Row> = (offset..total.min(offset + visible))
        .map(|i| {
            let (cells, style) = make_row(i);
            let cells: Vec<Line> = cells
                .into_iter()
                .zip(&shown)
                .filter(|(_, s)| **s)
                .map(|(c, _)| c)
                .collect();
            for (w, c) in wants.iter_mut().zip(&cells) {
                *w = (*w).max(c.width());
            }
            Row::new(cells.into_iter().map(Cell::from)).style(style)
        })
        .collect();
    let header = Row::new(cols.iter().map(|c| Span::styled(c.header, theme.muted())));
    // Inside the borders and the selection symbol's column, less one space between columns.
    let fixed: usize = cols
        .iter()
        .map(|c| match c.width {
            Constraint::Length(n) => usize::from(n),
            _ => 0,
        })
        .sum();
    let room = usize::from(area.width)
        .saturating_sub(2 + SELECTED.chars().count() + cols.len().saturating_sub(1) + fixed);
    let fill: Vec<usize> = cols
        .iter()
        .zip(&wants)
        .filter(|(c, _)| !matches!(c.width, Constraint::Length(_)))
        .map(|(_, w)| *w)
        .collect();
    let mut fitted = fit_widths(&fill, room).into_iter();
    let widths: Vec<Constraint> = cols
        .iter()
        .map(|c| match c.width {
            Constraint::Length(n) => Constraint::Length(n),
            _ => Constraint::Length(fitted.next().map_or(0, |w| w as u16)),
        })
        .collect();
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .style(theme.base())
        .row_highlight_style(theme.selection())
        .highlight_symbol(SELECTED)
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always)
        .column_spacing(1);
    let mut state = TableState::default().with_selected(sel.map(|s| s - offset));
    frame.render_stateful_widget(table, area, &mut state);
}

/// Share `room` columns among columns wanting `wants`: max-min fair (the narrowest get all
/// they want, the rest split what is left evenly), then what nobody wanted is spread over all.
pub fn fit_widths(wants: &[usize], room: usize) -> Vec<usize> {
    let n = wants.len();
    let mut out = vec![0; n];
    if n == 0 {
        return out;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| wants[i]);
    let mut left = room;
    for (k, &i) in order.iter().enumerate() {
        let share = left / (n - k);
        out[i] = wants[i].min(share);
        left -= out[i];
    }
    for (k, w) in out.iter_mut().enumerate() {
        *w += left / n + usize::from(k < left % n);
    }
    out
}

/// `12:00:03.123` (UTC).
pub fn clock_ms(t: DateTime<Utc>) -> String {
    t.format("%H:%M:%S%.3f").to_string()
}

/// `2026-12-03` (UTC).
pub fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// `5s ago`, or `never`.
pub fn seen(now: DateTime<Utc>, t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "never".to_string(), |t| crate::duration::ago(now - t))
}

/// `10:02:11` when `t` is on `now`'s UTC day, else `11-27 10:02`.
pub fn clock_time(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    if t.date_naive() == now.date_naive() {
        t.format("%H:%M:%S").to_string()
    } else {
        t.format("%m-%d %H:%M").to_string()
    }
}

/// `1h 2m` style, for uptime.
pub fn span(d: Duration) -> String {
    crate::duration::countdown(d.max(Duration::zero()))
}

/// The text, or `-` when absent or empty.
pub fn or_dash(v: Option<&str>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

#[cfg(test)]
mod tests {
    use super::fit_widths;

    #[test]
    fn narrow_columns_get_what_they_want_and_wide_ones_share_the_rest() {
        // Room for all: each gets its want, and the spare spread over all.
        assert_eq!(fit_widths(&[10, 20], 40), vec![15, 25]);
        // Not enough: the short one whole, the long one the rest.
        assert_eq!(fit_widths(&[24, 80], 60), vec![24, 36]);
        // Both long: an even split.
        assert_eq!(fit_widths(&[70, 80], 60), vec![30, 30]);
        assert_eq!(fit_widths(&[], 10), Vec::<usize>::new());
        assert_eq!(fit_widths(&[5, 5, 5], 0), vec![0, 0, 0]);
    }
}
