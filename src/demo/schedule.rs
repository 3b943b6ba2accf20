//! Bot schedules: steady with jitter, or a runaway script's periodic bursts. Intervals scale
//! with the rate multiplier; the scenario's wall-clock timeline does not.

use std::time::Duration;

use rand::Rng;

/// When a bot sends. Intervals are divided by the rate multiplier; start offsets and burst
/// windows are the scenario's wall-clock timeline and are not.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every `interval` ± `jitter` (a fraction, 0.2 = ±20 %), the first at `first_at` (or at a
    /// random point of the first interval, capped at 2 s, so a short run sees every bot).
    Every {
        interval: Duration,
        jitter: f64,
        first_at: Option<Duration>,
    },
    /// A script that runs away: `base` interval, and from `first_burst_at`, every `burst_every`,
    /// `burst_len` at `burst_rate` requests per second.
    Spiky {
        base: Duration,
        burst_rate: f64,
        burst_len: Duration,
        first_burst_at: Duration,
        burst_every: Duration,
    },
}

impl Schedule {
    /// Delay before the first request.
    pub(super) fn first_delay(&self) -> Duration {
        match self {
            Schedule::Every {
                first_at: Some(at), ..
            } => *at,
            Schedule::Every { interval, .. } | Schedule::Spiky { base: interval, .. } => {
                let cap = (*interval).min(Duration::from_secs(2));
                cap.mul_f64(rand::rng().random_range(0.0..1.0))
            }
        }
    }

    /// Delay after a request sent at `elapsed` (since the bot started) until the next.
    pub fn next_delay(&self, elapsed: Duration, rate_multiplier: f64) -> Duration {
        let m = if rate_multiplier > 0.0 {
            rate_multiplier
        } else {
            1.0
        };
        let scaled = |d: Duration| {
            if m.is_finite() {
                d.div_f64(m)
            } else {
                Duration::ZERO
            }
        };
        match self {
            Schedule::Every {
                interval, jitter, ..
            } => {
                let j = jitter.clamp(0.0, 0.95);
                let f = if j > 0.0 {
                    rand::rng().random_range(1.0 - j..1.0 + j)
                } else {
                    1.0
                };
                scaled(interval.mul_f64(f))
            }
            Schedule::Spiky {
                base,
                burst_rate,
                burst_len,
                first_burst_at,
                burst_every,
            } => {
                if elapsed >= *first_burst_at {
                    let since = elapsed - *first_burst_at;
                    let phase = Duration::from_nanos(
                        (since.as_nanos() % burst_every.as_nanos().max(1)) as u64,
                    );
                    if phase < *burst_len {
                        return scaled(Duration::from_secs_f64(1.0 / burst_rate.max(0.001)));
                    }
                    let to_next = *burst_every - phase;
                    return scaled(*base).min(to_next);
                }
                scaled(*base).min(*first_burst_at - elapsed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scales_with_the_rate_multiplier() {
        let s = Schedule::Every {
            interval: Duration::from_secs(2),
            jitter: 0.0,
            first_at: None,
        };
        assert_eq!(s.next_delay(Duration::ZERO, 1.0), Duration::from_secs(2));
        assert_eq!(
            s.next_delay(Duration::ZERO, 4.0),
            Duration::from_millis(500)
        );
        assert_eq!(s.next_delay(Duration::ZERO, f64::INFINITY), Duration::ZERO);
        // Nonsense multipliers fall back to the realistic rate instead of dividing by zero.
        assert_eq!(s.next_delay(Duration::ZERO, 0.0), Duration::from_secs(2));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let s = Schedule::Every {
            interval: Duration::from_secs(10),
            jitter: 0.2,
            first_at: None,
        };
        for _ in 0..200 {
            let d = s.next_delay(Duration::ZERO, 1.0);
            assert!(
                d >= Duration::from_secs(8) && d <= Duration::from_secs(12),
                "{d:?}"
            );
        }
    }

    #[test]
    fn spiky_bursts_in_its_window_and_never_sleeps_past_one() {
        let s = Schedule::Spiky {
            base: Duration::from_secs(5),
            burst_rate: 200.0,
            burst_len: Duration::from_secs(10),
            first_burst_at: Duration::from_secs(12),
            burst_every: Duration::from_secs(60),
        };
        let secs = Duration::from_secs;
        // Before the first burst: the base rate, but not past the burst start.
        assert_eq!(s.next_delay(secs(0), 1.0), secs(5));
        assert_eq!(s.next_delay(secs(10), 1.0), secs(2));
        // Inside a burst: 200/s.
        assert_eq!(s.next_delay(secs(15), 1.0), Duration::from_millis(5));
        assert_eq!(s.next_delay(secs(75), 1.0), Duration::from_millis(5));
        // Between bursts: base again, cut short at the next burst.
        assert_eq!(s.next_delay(secs(30), 1.0), secs(5));
        assert_eq!(s.next_delay(secs(70), 1.0), secs(2));
        // The multiplier speeds up bursts too.
        assert_eq!(s.next_delay(secs(15), 10.0), Duration::from_micros(500));
    }

    #[test]
    fn first_delay_is_capped_so_short_runs_see_every_bot() {
        let s = Schedule::Every {
            interval: Duration::from_secs(60),
            jitter: 0.0,
            first_at: None,
        };
        for _ in 0..50 {
            assert!(s.first_delay() <= Duration::from_secs(2));
        }
        let fixed = Schedule::Every {
            interval: Duration::from_secs(60),
            jitter: 0.0,
            first_at: Some(Duration::from_secs(3)),
        };
        assert_eq!(fixed.first_delay(), Duration::from_secs(3));
    }
}
