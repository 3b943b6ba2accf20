//! The time the views look at: the Traffic chart's window (`[` / `]`: 1 min to 24 h) and its
//! cursor (`,` / `.`), which selects one interval of the window. The identities table, the live
//! tail and the Log view follow the selection (`AppState::shown_interval`); with no window
//! selected the chart spans what the terminal width gives and the tables show everything
//! retained, as before windows existed. `columns` folds the per-second or per-minute buckets
//! into one value per chart column. Pure: no clock reads, the state's `now` is the end.

use super::aggregate::{Bucket, Identities, Traffic};
use super::app::{AppState, ViewId};

/// The windows `[` and `]` step through: seconds and label.
pub const WINDOWS: [(i64, &str); 6] = [
    (60, "1m"),
    (300, "5m"),
    (900, "15m"),
    (3600, "1h"),
    (6 * 3600, "6h"),
    (24 * 3600, "24h"),
];

/// Cursor steps per window: the cursor selects 1/60 of the window (1 s of 1 min, 24 min of
/// 24 h), whatever the terminal width.
pub const CURSOR_STEPS: i64 = 60;

/// One of `WINDOWS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow(usize);

impl TimeWindow {
    /// Seconds the window spans.
    pub fn secs(self) -> i64 {
        WINDOWS[self.0].0
    }

    /// `1m`, `6h`.
    pub fn label(self) -> &'static str {
        WINDOWS[self.0].1
    }

    /// Seconds one cursor step spans.
    pub fn step(self) -> i64 {
        self.secs() / CURSOR_STEPS
    }

    /// The widest window narrower than `secs`, if any.
    pub fn narrower_than(secs: i64) -> Option<Self> {
        WINDOWS.iter().rposition(|w| w.0 < secs).map(Self)
    }

    /// The narrowest window wider than `secs`, if any.
    pub fn wider_than(secs: i64) -> Option<Self> {
        WINDOWS.iter().position(|w| w.0 > secs).map(Self)
    }

    /// The narrowest window of at least `secs` (the widest when none is).
    pub fn at_least(secs: i64) -> Self {
        Self(
            WINDOWS
                .iter()
                .position(|w| w.0 >= secs)
                .unwrap_or(WINDOWS.len() - 1),
        )
    }
}

/// What `[`, `]`, `,` and `.` selected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeSelection {
    /// None: the chart spans what the width gives and the tables show everything retained.
    pub window: Option<TimeWindow>,
    /// The cursor's interval, by its first unix second (a multiple of the window's step);
    /// None: live. Kept in absolute time, so the interval read stays put as time passes.
    pub cursor: Option<i64>,
}

/// Unix seconds `start..end`; `end` None: up to the newest event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start: i64,
    pub end: Option<i64>,
}

impl TimeSelection {
    /// The interval the tables follow when the chart ends at `now_sec` (None: no window).
    pub fn interval(&self, now_sec: i64) -> Option<Interval> {
        let w = self.window?;
        Some(match self.cursor {
            Some(c) => Interval {
                start: c,
                end: Some(c + w.step()),
            },
            None => Interval {
                start: now_sec - w.secs() + 1,
                end: None,
            },
        })
    }

    /// The cursor positions of `w` ending at `now_sec`: the first and the last step start.
    fn cursor_bounds(w: TimeWindow, now_sec: i64) -> (i64, i64) {
        let step = w.step();
        let last = now_sec.div_euclid(step) * step;
        (last - (CURSOR_STEPS - 1) * step, last)
    }

    /// Put the cursor in `w`'s step grid, inside the window ending at `now_sec`.
    fn align_cursor(&mut self, now_sec: i64) {
        if let (Some(w), Some(c)) = (self.window, self.cursor) {
            let (first, last) = Self::cursor_bounds(w, now_sec);
            self.cursor = Some((c.div_euclid(w.step()) * w.step()).clamp(first, last));
        }
    }
}

/// The chart's columns: `buckets[i]` sums the seconds `start + i*span .. start + (i+1)*span`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    /// Seconds per column.
    pub span: i64,
    /// The first second of the first column.
    pub start: i64,
    pub buckets: Vec<Bucket>,
}

impl Columns {
    /// Columns overlapping the unix seconds `from..to`.
    pub fn overlapping(&self, from: i64, to: i64) -> std::ops::Range<usize> {
        let n = self.buckets.len() as i64;
        let first = (from - self.start).div_euclid(self.span).clamp(0, n);
        let end = (to - self.start + self.span - 1)
            .div_euclid(self.span)
            .clamp(first, n);
        first as usize..end as usize
    }

    /// The per-second rate a column's count stands for.
    pub fn rate(&self, count: u64) -> f64 {
        count as f64 / self.span as f64
    }
}

/// The `secs` seconds ending at `end_sec` folded into at most `width` columns: from the
/// per-second buckets while they reach back far enough, else from the per-minute ones (then a
/// column spans whole minutes).
pub fn columns(traffic: &Traffic, end_sec: i64, secs: i64, width: usize) -> Columns {
    let width = width.max(1) as i64;
    let secs = secs.max(1);
    let mut span = (secs + width - 1) / width;
    let by_second = secs <= traffic.seconds.window() as i64;
    // Minute columns end at the end of the current minute, so each holds whole minutes.
    let end_excl = if by_second {
        end_sec + 1
    } else {
        span = round_up(span.max(60), 60);
        round_up(end_sec + 1, 60)
    };
    let n = (secs + span - 1) / span;
    let start = end_excl - n * span;
    let buckets = (0..n)
        .map(|i| {
            let from = start + i * span;
            let mut sum = Bucket {
                sec: from,
                ..Bucket::default()
            };
            let (source, lo, hi) = if by_second {
                (&traffic.seconds, from, from + span)
            } else {
                (&traffic.minutes, from / 60, (from + span) / 60)
            };
            for b in (lo..hi).map(|k| source.get(k)) {
                sum.allowed += b.allowed;
                sum.denied += b.denied;
                sum.rate_limited += b.rate_limited;
                for (m, n) in sum.by_method.iter_mut().zip(b.by_method) {
                    *m += n;
                }
            }
            sum
        })
        .collect();
    Columns {
        span,
        start,
        buckets,
    }
}

/// `x` rounded up to a multiple of `m` (> 0).
fn round_up(x: i64, m: i64) -> i64 {
    (x + m - 1).div_euclid(m) * m
}

/// `11:58:00 to 11:59:00` (with the date when the interval is not today in `now_sec`'s UTC day).
pub fn interval_label(start: i64, end: i64, now_sec: i64) -> String {
    let t = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap_or_default();
    let (a, b) = (t(start), t(end));
    if a.date_naive() == t(now_sec).date_naive() {
        format!("{} to {}", a.format("%H:%M:%S"), b.format("%H:%M:%S"))
    } else {
        format!("{} to {}", a.format("%m-%d %H:%M:%S"), b.format("%H:%M:%S"))
    }
}

impl AppState {
    /// The interval the tables and tail show (None: everything retained).
    pub fn shown_interval(&self) -> Option<Interval> {
        self.time.interval(self.shown_now().timestamp())
    }

    /// The identities the Traffic table shows: of the selected interval, or since start.
    pub fn shown_identities(&self) -> &Identities {
        match (&self.window_identities, self.time.window) {
            (Some(ids), Some(_)) => ids,
            _ => &self.shown_traffic().identities,
        }
    }

    /// The second the tables' rates end at: the cursor interval's last, or the chart's end.
    pub fn shown_end_sec(&self) -> i64 {
        match self.shown_interval().and_then(|i| i.end) {
            Some(end) => end - 1,
            None => self.shown_now().timestamp(),
        }
    }

    /// What the tables' titles say about the time they cover (None: no window).
    pub fn interval_title(&self) -> Option<String> {
        let w = self.time.window?;
        let now = self.shown_now().timestamp();
        Some(match self.time.cursor {
            Some(c) => interval_label(c, c + w.step(), now),
            None => format!("last {}", w.label()),
        })
    }

    /// `[` / `]`: a narrower or wider window than the chart shows now.
    pub(super) fn step_window(&mut self, wider: bool) {
        let shown = match self.time.window {
            Some(w) => w.secs(),
            None => super::views::layout::auto_window_secs(self),
        };
        let next = if wider {
            TimeWindow::wider_than(shown)
        } else {
            TimeWindow::narrower_than(shown)
        };
        match next {
            Some(w) => {
                self.time.window = Some(w);
                self.time.align_cursor(self.shown_now().timestamp());
                self.message = Some(Ok(format!("window {}", w.label())));
            }
            None => {
                self.message = Some(Err(format!(
                    "no {} window (1m 5m 15m 1h 6h 24h)",
                    if wider { "wider" } else { "narrower" }
                )));
            }
        }
        self.refresh_window();
    }

    /// `,` / `.`: move the chart cursor a step earlier or later; the first press puts it on the
    /// newest step (selecting the window the chart shows when none was).
    pub(super) fn move_cursor(&mut self, later: bool) {
        let now = self.shown_now().timestamp();
        let w = match self.time.window {
            Some(w) => w,
            None => {
                let w = TimeWindow::at_least(super::views::layout::auto_window_secs(self));
                self.time.window = Some(w);
                w
            }
        };
        let (first, last) = TimeSelection::cursor_bounds(w, now);
        self.time.cursor = Some(match self.time.cursor {
            None => last,
            Some(c) if later => (c + w.step()).min(last),
            Some(c) => (c - w.step()).max(first),
        });
        self.refresh_window();
    }

    /// Esc: drop the cursor and show live again; false when there was none.
    pub(super) fn leave_cursor(&mut self) -> bool {
        if self.time.cursor.take().is_none() {
            return false;
        }
        self.message = Some(Ok("live".into()));
        self.refresh_window();
        true
    }

    /// Recompute the selected interval's identities (one pass over its events in the ring);
    /// called when the selection or the frozen state changes and, for a live window, once per
    /// cursor step of the clock. New events are added as they arrive (`AppState::ingest`).
    pub(super) fn refresh_window(&mut self) {
        self.window_identities = self.shown_interval().map(|iv| {
            let traffic = self.shown_traffic();
            let ring = &traffic.ring;
            Identities::of_events(
                traffic.identities.max(),
                ring.seq_range(iv.start, iv.end).filter_map(|q| ring.get(q)),
            )
        });
        for v in [ViewId::Traffic, ViewId::Log] {
            let i = v.index();
            self.selected[i] =
                self.selected[i].min(super::rows::row_count(self, v).saturating_sub(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AccessEvent, ConnectionMethod, EventKind};
    use crate::console::aggregate::Limits;
    use chrono::TimeZone;
    use std::sync::Arc;

    fn traffic(secs: &[i64]) -> Traffic {
        let mut t = Traffic::new(Limits::default());
        for &s in secs {
            let mut e = AccessEvent::empty(
                EventKind::Access,
                chrono::Utc.timestamp_opt(s, 0).unwrap(),
                s.to_string(),
            );
            e.allowed = s % 2 == 0;
            e.connection_method = ConnectionMethod::Mtls;
            t.record(&Arc::new(e));
        }
        t
    }

    #[test]
    fn windows_step_from_what_the_chart_shows() {
        assert_eq!(
            TimeWindow::wider_than(81).map(TimeWindow::label),
            Some("5m")
        );
        assert_eq!(
            TimeWindow::narrower_than(81).map(TimeWindow::label),
            Some("1m")
        );
        assert_eq!(TimeWindow::narrower_than(60), None);
        assert_eq!(TimeWindow::wider_than(86_400), None);
        assert_eq!(TimeWindow::at_least(81).label(), "5m");
        assert_eq!(TimeWindow::at_least(1_000_000).label(), "24h");
        assert_eq!(TimeWindow::at_least(3600).step(), 60);
    }

    #[test]
    fn short_windows_fold_seconds_into_columns() {
        let t = traffic(&[1000, 1001, 1002, 1003, 1004]);
        let c = columns(&t, 1004, 300, 100);
        assert_eq!((c.span, c.buckets.len()), (3, 100));
        assert_eq!(c.start, 1005 - 300);
        let last = c.buckets.last().unwrap();
        assert_eq!((last.sec, last.total()), (1002, 3));
        assert_eq!(c.buckets[98].total(), 2, "1000 and 1001");
        assert_eq!(c.overlapping(1001, 1002), 98..99);
        assert_eq!(c.overlapping(0, 1), 0..0);
        // The width-given chart of live mode: one second per column.
        let live = columns(&t, 1004, 81, 81);
        assert_eq!((live.span, live.buckets.len()), (1, 81));
        assert_eq!(live.buckets[80].total(), 1);
    }

    #[test]
    fn long_windows_read_whole_minutes() {
        let t = traffic(&[0, 59, 60, 3599, 3600 * 5]);
        let c = columns(&t, 3600 * 6 + 30, 6 * 3600, 81);
        assert_eq!(c.span, 300, "267 s per column rounded up to whole minutes");
        assert_eq!(c.buckets.len(), 72);
        assert_eq!(c.start, 60, "whole minutes, ending with the current one");
        let total: u32 = c.buckets.iter().map(Bucket::total).sum();
        assert_eq!(total, 3, "minute 0 is older than the 6 h window");
        assert_eq!(c.buckets[(3600 * 5 - 60) / 300].total(), 1);
    }

    #[test]
    fn the_cursor_interval_is_one_step_and_stays_in_absolute_time() {
        let mut sel = TimeSelection {
            window: Some(TimeWindow::at_least(3600)),
            cursor: None,
        };
        assert_eq!(
            sel.interval(10_000),
            Some(Interval {
                start: 10_000 - 3599,
                end: None
            })
        );
        assert_eq!(
            TimeSelection::cursor_bounds(TimeWindow(3), 10_000),
            (6_420, 9_960)
        );
        sel.cursor = Some(9_960);
        assert_eq!(
            sel.interval(20_000),
            Some(Interval {
                start: 9_960,
                end: Some(10_020)
            })
        );
        // Narrowing to 1m re-aligns the cursor into the new window's grid.
        sel.window = Some(TimeWindow(0));
        sel.align_cursor(10_000);
        assert_eq!(sel.cursor, Some(9_960));
        sel.window = Some(TimeWindow(5));
        sel.align_cursor(10_000);
        assert_eq!(sel.cursor, Some(8_640), "24 min steps");
    }

    #[test]
    fn interval_labels_add_the_date_when_not_today() {
        let day = 86_400 * 20_000;
        assert_eq!(
            interval_label(day + 60, day + 120, day + 500),
            "00:01:00 to 00:02:00"
        );
        assert_eq!(
            interval_label(day - 60, day, day + 500),
            "10-03 23:59:00 to 00:00:00"
        );
    }
}
