//! Key-to-draw latency: how long from reading a key to the end of the frame that shows its
//! effect. The runner records one sample per drawn frame that follows at least one key (the
//! oldest key waiting counts), into a fixed histogram of 0.1 ms buckets up to 200 ms plus an
//! overflow bucket, so recording never allocates. Reported on exit when asked
//! (`BOTGATE_CONSOLE_LATENCY=FILE`).

use std::time::Duration;

/// Bucket width.
const STEP_US: u64 = 100;
/// Buckets below the overflow bucket (0.1 ms × 2000 = 200 ms).
const BUCKETS: usize = 2000;

/// A fixed-size latency histogram.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    counts: Vec<u32>,
    overflow: u32,
    samples: u64,
    max: Duration,
    sum: Duration,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            overflow: 0,
            samples: 0,
            max: Duration::ZERO,
            sum: Duration::ZERO,
        }
    }
}

impl LatencyHistogram {
    pub fn record(&mut self, d: Duration) {
        let bucket = (d.as_micros() / u128::from(STEP_US)) as usize;
        match self.counts.get_mut(bucket) {
            Some(c) => *c = c.saturating_add(1),
            None => self.overflow = self.overflow.saturating_add(1),
        }
        self.samples += 1;
        self.max = self.max.max(d);
        self.sum += d;
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    pub fn max(&self) -> Duration {
        self.max
    }

    /// The upper edge of the bucket holding quantile `q` (0.0–1.0); the maximum when it falls
    /// in the overflow bucket; zero with no samples.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.samples == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.samples as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                let edge = Duration::from_micros((i as u64 + 1) * STEP_US);
                return edge.min(self.max);
            }
        }
        self.max
    }

    /// `key-to-draw: 212 samples, p50 1.2 ms, p99 4.8 ms, max 6.1 ms, mean 1.4 ms`.
    pub fn summary(&self, what: &str) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mean = if self.samples == 0 {
            0.0
        } else {
            ms(self.sum) / self.samples as f64
        };
        format!(
            "{what}: {} samples, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, mean {:.1} ms",
            self.samples,
            ms(self.quantile(0.5)),
            ms(self.quantile(0.99)),
            ms(self.max),
            mean
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), Duration::ZERO);
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.samples(), 100);
        // 50 ms falls in the bucket [50.0, 50.1) ms whose upper edge is reported.
        assert_eq!(h.quantile(0.5), Duration::from_micros(50_100));
        assert_eq!(h.quantile(0.99), Duration::from_micros(99_100));
        assert_eq!(h.max(), Duration::from_millis(100));
        assert!(
            h.summary("key-to-draw")
                .starts_with("key-to-draw: 100 samples, p50 50.1 ms, p99 99.1 ms, max 100.0 ms"),
            "{}",
            h.summary("key-to-draw")
        );
    }

    #[test]
    fn beyond_the_last_bucket_reports_the_maximum() {
        let mut h = LatencyHistogram::default();
        h.record(Duration::from_millis(1));
        h.record(Duration::from_secs(3));
        assert_eq!(h.quantile(1.0), Duration::from_secs(3));
        assert_eq!(h.quantile(0.5), Duration::from_micros(1_100).min(h.max()));
    }
}
