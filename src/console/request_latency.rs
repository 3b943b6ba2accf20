//! Request latency per app over time, from the access events' `latency_ms`: a log-scale
//! histogram per app and minute for the last hour, so p50 and p99 of any minute (or of the
//! hour) cost a sum of histograms, not a sort of events. Bounded: at most `MAX_APPS` apps
//! (later ones are counted apart), `MINUTES` minutes, `BINS` bins each.
//!
//! Bins are quarter-doublings from `FIRST_BIN_MS` (each bin spans ×1.19), so a quantile is
//! read to within about ±9 % of its value; latencies past the last bin (~3.3 s) land in it.

use std::sync::Arc;

/// Minutes of history kept per app.
pub const MINUTES: usize = 60;
/// Apps tracked at most.
pub const MAX_APPS: usize = 16;
/// Histogram bins per minute.
const BINS: usize = 64;
/// The lower edge of bin 1 in milliseconds (bin 0 holds everything faster).
const FIRST_BIN_MS: f64 = 0.05;
/// Bins per doubling.
const PER_DOUBLING: f64 = 4.0;

/// A latency histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram([u32; BINS]);

impl Default for Histogram {
    fn default() -> Self {
        Self([0; BINS])
    }
}

impl Histogram {
    fn bin(ms: f64) -> usize {
        if ms.is_nan() || ms <= FIRST_BIN_MS {
            return 0;
        }
        // Finite and positive here; the cast saturates and the min keeps it in range.
        ((PER_DOUBLING * (ms / FIRST_BIN_MS).log2()) as usize + 1).min(BINS - 1)
    }

    /// The geometric middle of bin `i`, in milliseconds.
    fn value(i: usize) -> f64 {
        if i == 0 {
            return FIRST_BIN_MS;
        }
        FIRST_BIN_MS * ((i as f64 - 0.5) / PER_DOUBLING).exp2()
    }

    pub fn record(&mut self, ms: f64) {
        let b = &mut self.0[Self::bin(ms)];
        *b = b.saturating_add(1);
    }

    pub fn add(&mut self, other: &Histogram) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.saturating_add(b);
        }
    }

    pub fn count(&self) -> u64 {
        self.0.iter().map(|&n| u64::from(n)).sum()
    }

    /// The `q` quantile (0–1) in milliseconds; None when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        // The rank of the quantile, 1-based: at least the first sample.
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, &c) in self.0.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Some(Self::value(i));
            }
        }
        Some(Self::value(BINS - 1))
    }
}

/// One app's histograms, a ring indexed by `minute % MINUTES`.
#[derive(Debug, Clone)]
struct AppMinutes {
    name: Arc<str>,
    slots: Box<[(i64, Histogram)]>,
    /// Requests with a latency in the last `MINUTES` (for ordering apps).
    total: u64,
}

impl AppMinutes {
    fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            slots: vec![(i64::MIN, Histogram::default()); MINUTES].into_boxed_slice(),
            total: 0,
        }
    }

    fn slot(minute: i64) -> usize {
        minute.rem_euclid(MINUTES as i64) as usize
    }

    fn record(&mut self, minute: i64, ms: f64) {
        let (m, h) = &mut self.slots[Self::slot(minute)];
        if *m > minute {
            return;
        }
        if *m < minute {
            *m = minute;
            *h = Histogram::default();
        }
        h.record(ms);
        self.total += 1;
    }

    fn get(&self, minute: i64) -> Option<&Histogram> {
        let (m, h) = &self.slots[Self::slot(minute)];
        (*m == minute).then_some(h)
    }
}

/// Latency of every app the console saw, per minute.
#[derive(Debug, Clone, Default)]
pub struct AppLatency {
    apps: Vec<AppMinutes>,
    /// Requests of apps past `MAX_APPS`, not charted.
    pub untracked: u64,
}

/// One app's latency: p50 and p99 per minute (oldest first; None: no requests that minute)
/// and over the whole span.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSeries {
    pub app: Arc<str>,
    pub p50: Vec<Option<f64>>,
    pub p99: Vec<Option<f64>>,
    pub overall_p50: Option<f64>,
    pub overall_p99: Option<f64>,
    pub requests: u64,
}

impl AppLatency {
    /// Count a request to `app` at unix second `sec` that took `ms`.
    pub fn record(&mut self, app: &str, sec: i64, ms: f64) {
        let minute = sec.div_euclid(60);
        let full = self.apps.len() >= MAX_APPS;
        match self.apps.iter_mut().find(|a| &*a.name == app) {
            Some(a) => a.record(minute, ms),
            None if !full => {
                let mut a = AppMinutes::new(app);
                a.record(minute, ms);
                self.apps.push(a);
            }
            None => self.untracked += 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// Apps tracked.
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    /// Each app's series over the `MINUTES` minutes ending with the one holding `end_sec`,
    /// busiest app first.
    pub fn series(&self, end_sec: i64) -> Vec<AppSeries> {
        let end = end_sec.div_euclid(60);
        let minutes = end - MINUTES as i64 + 1..=end;
        let mut out: Vec<AppSeries> = self
            .apps
            .iter()
            .map(|a| {
                let mut all = Histogram::default();
                let (mut p50, mut p99) = (Vec::new(), Vec::new());
                for m in minutes.clone() {
                    let h = a.get(m);
                    if let Some(h) = h {
                        all.add(h);
                    }
                    p50.push(h.and_then(|h| h.quantile(0.5)));
                    p99.push(h.and_then(|h| h.quantile(0.99)));
                }
                AppSeries {
                    app: a.name.clone(),
                    p50,
                    p99,
                    overall_p50: all.quantile(0.5),
                    overall_p99: all.quantile(0.99),
                    requests: all.count(),
                }
            })
            .filter(|s| s.requests > 0)
            .collect();
        out.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.app.cmp(&b.app)));
        out
    }
}

/// `1.5 ms`, `12 ms`, `1.2 s`.
pub fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_read_within_a_bin() {
        let mut h = Histogram::default();
        for i in 1..=1000 {
            h.record(f64::from(i) / 10.0); // 0.1 ms … 100 ms, uniform
        }
        let p50 = h.quantile(0.5).unwrap();
        let p99 = h.quantile(0.99).unwrap();
        assert!((p50 / 50.0 - 1.0).abs() < 0.1, "p50 {p50}");
        assert!((p99 / 99.0 - 1.0).abs() < 0.1, "p99 {p99}");
        assert_eq!(Histogram::default().quantile(0.5), None);
        let mut odd = Histogram::default();
        odd.record(f64::NAN);
        odd.record(-3.0);
        odd.record(1e12);
        assert_eq!(odd.count(), 3, "nothing is lost, nothing panics");
    }

    #[test]
    fn apps_keep_an_hour_per_minute_busiest_first() {
        let mut l = AppLatency::default();
        for s in 0..120 {
            l.record("api", 6_000 + s, 2.0);
        }
        l.record("api", 6_000 + 119, 500.0);
        l.record("slow", 6_060, 300.0);
        let series = l.series(6_119);
        assert_eq!(series[0].app.as_ref(), "api");
        assert_eq!(series[0].requests, 121);
        assert_eq!(series[0].p50.len(), MINUTES);
        let last = series[0].p99[MINUTES - 1].unwrap();
        assert!(
            last > 400.0,
            "the slow request is this minute's p99: {last}"
        );
        assert!(series[0].p50[MINUTES - 1].unwrap() < 3.0);
        assert_eq!(series[0].p50[0], None, "an hour ago: nothing");
        assert_eq!(series[1].app.as_ref(), "slow");
        // An hour later the minutes have left the window.
        assert!(l.series(6_119 + 3600).is_empty());
        for i in 0..MAX_APPS {
            l.record(&format!("app-{i}"), 6_100, 1.0);
        }
        assert_eq!(l.untracked, 2);
    }

    #[test]
    fn milliseconds_read_naturally() {
        assert_eq!(format_ms(1.46), "1.5 ms");
        assert_eq!(format_ms(12.4), "12 ms");
        assert_eq!(format_ms(1234.0), "1.2 s");
    }
}
