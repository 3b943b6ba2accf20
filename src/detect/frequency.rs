//! Frequency spike: per credential, the request rate over the last `window` against a baseline
//! (an EWMA of the per-bucket rate over the buckets that already left the window, so the spike
//! itself does not raise the baseline it is compared with until it is history).
//!
//! A credential younger than `warmup`, or with no bucket out of the window yet, never spikes;
//! the baseline is floored at `min_baseline_per_hour` and the rate must reach
//! `min_rate_per_hour`, so a quiet credential's first busy minute is not an incident. The
//! baseline keeps learning during a spike: a rate that stays high becomes the new normal and
//! the alert resolves (after about `baseline_half_life × log2(rate/baseline / factor)`).
//! No seasonality: a nightly batch that is much busier than the day can alert nightly.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::alert::{AlertBook, Content, Hit, Rule, Severity, Subject};
use super::config::FrequencyConfig;
use super::window::{BoundedMap, WindowCounter};
use crate::audit::AccessEvent;

#[derive(Debug)]
struct Rate {
    first_seen: DateTime<Utc>,
    recent: WindowCounter,
    /// Bias-corrected EWMA: baseline = ewma / weight (weight = 1 - decay^buckets seen).
    ewma: f64,
    weight: f64,
}

/// The rule.
#[derive(Debug)]
pub(crate) struct FrequencySpike {
    cfg: FrequencyConfig,
    /// Per-bucket decay of the EWMA: 0.5 ^ (bucket / half-life).
    decay: f64,
    slots: usize,
    rates: BoundedMap<String, Rate>,
}

impl FrequencySpike {
    pub(crate) fn new(cfg: FrequencyConfig, max_keys: usize) -> Self {
        let bucket = cfg.bucket.num_milliseconds().max(1) as f64;
        let decay = 0.5f64.powf(bucket / cfg.baseline_half_life.num_milliseconds().max(1) as f64);
        let slots =
            (cfg.window.num_milliseconds() / cfg.bucket.num_milliseconds().max(1)).max(1) as usize;
        Self {
            cfg,
            decay,
            slots,
            rates: BoundedMap::new(max_keys),
        }
    }

    /// Count `requests` authenticated requests like `ev` and alert if the rate is a spike.
    pub(crate) fn observe(
        &mut self,
        ev: &AccessEvent,
        requests: u64,
        subject: &Subject,
        book: &mut AlertBook,
    ) -> Option<AccessEvent> {
        let now = ev.created_at;
        let key = subject.key_str();
        let (window, slots, decay) = (self.cfg.window, self.slots, self.decay);
        let per_hour = |count: u64, span: Duration| {
            count as f64 * 3_600_000.0 / span.num_milliseconds().max(1) as f64
        };
        let bucket = self.cfg.bucket;
        let state = self.rates.touch(&*key, now, || Rate {
            first_seen: now,
            recent: WindowCounter::new(window, slots),
            ewma: 0.0,
            weight: 0.0,
        });
        let (ewma, weight) = (&mut state.ewma, &mut state.weight);
        state.recent.add_with(now, requests, |count, times| {
            let d = decay.powf(times as f64);
            *ewma = d * *ewma + (1.0 - d) * per_hour(count, bucket);
            *weight = 1.0 - d * (1.0 - *weight);
        });
        if state.weight <= 0.0 || now - state.first_seen < self.cfg.warmup {
            return None;
        }
        let in_window = state.recent.total(now);
        let rate = per_hour(in_window, window);
        let baseline = state.ewma / state.weight;
        let floor = baseline.max(self.cfg.min_baseline_per_hour);
        if rate < self.cfg.min_rate_per_hour || rate < self.cfg.factor * floor {
            return None;
        }
        let add = if book.is_open(Rule::FrequencySpike, &key) {
            requests
        } else {
            in_window
        };
        let facts = [
            ("ips", ev.ip_address.as_deref()),
            ("user_agents", ev.user_agent.as_deref()),
        ];
        let hit = Hit {
            rule: Rule::FrequencySpike,
            subject,
            at: now,
            add,
            severity: Severity::Warning,
            phase: 0,
            notable: false,
            facts: &facts,
            event: Some(ev),
        };
        let factor = self.cfg.factor;
        book.hit(hit, || Content {
            title: format!(
                "{}: {:.0} requests/h over the last {}, baseline {:.0}/h ({:.0}x)",
                subject.describe(),
                rate,
                crate::duration::countdown(window),
                baseline,
                rate / floor
            ),
            evidence: json!({
                "rate_per_hour": rate.round(),
                "baseline_per_hour": baseline.round(),
                "factor": factor,
                "window_secs": window.num_seconds(),
                "requests_in_window": in_window,
            }),
        })
    }

    /// Forget credentials idle long enough that their baseline has decayed to nothing.
    pub(crate) fn forget_idle(&mut self, now: DateTime<Utc>) {
        let idle = self.cfg.baseline_half_life * 20 + self.cfg.window + self.cfg.warmup;
        self.rates.forget_before(now - idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn ev(at: DateTime<Utc>) -> AccessEvent {
        let mut e = AccessEvent::empty(crate::audit::EventKind::Access, at, "r".into());
        e.allowed = true;
        e.service_token_id = Some("abc.access".into());
        e.service_token_name = Some("ci-runner-prod".into());
        e.ip_address = Some("10.0.0.1".into());
        e
    }

    /// `per_hour` evenly spaced requests from `from` for `span`; returns the alerts.
    fn traffic(
        r: &mut FrequencySpike,
        book: &mut AlertBook,
        from: DateTime<Utc>,
        span: Duration,
        per_hour: i64,
    ) -> Vec<AccessEvent> {
        let n = span.num_seconds() * per_hour / 3600;
        let step = span.num_milliseconds() / n.max(1);
        let s = Subject::of_event(&ev(from)).unwrap();
        (0..n)
            .filter_map(|i| r.observe(&ev(from + Duration::milliseconds(i * step)), 1, &s, book))
            .collect()
    }

    fn production() -> FrequencySpike {
        FrequencySpike::new(FrequencyConfig::default(), 100)
    }

    #[test]
    fn fires_when_100_per_hour_becomes_10000_per_hour() {
        let (mut r, mut book) = (production(), AlertBook::new(100));
        assert!(traffic(&mut r, &mut book, t0(), Duration::hours(3), 100).is_empty());
        let alerts = traffic(
            &mut r,
            &mut book,
            t0() + Duration::hours(3),
            Duration::minutes(10),
            10_000,
        );
        let first = alerts.first().expect("spike detected");
        let d = first.details.as_ref().unwrap();
        assert_eq!(first.decision, "frequency_spike");
        let baseline = d["evidence"]["baseline_per_hour"].as_f64().unwrap();
        assert!((80.0..=120.0).contains(&baseline), "baseline {baseline}");
        // Detected within the first two minutes of the spike.
        let spike_started = t0() + Duration::hours(3);
        assert!(
            first.created_at - spike_started < Duration::minutes(2),
            "{}",
            first.created_at
        );
        assert!(
            alerts.len() <= 12,
            "updates only when the count doubles, got {}",
            alerts.len()
        );
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn steady_or_modestly_higher_traffic_does_not_fire() {
        let (mut r, mut book) = (production(), AlertBook::new(100));
        assert!(traffic(&mut r, &mut book, t0(), Duration::hours(3), 2000).is_empty());
        assert!(
            traffic(
                &mut r,
                &mut book,
                t0() + Duration::hours(3),
                Duration::hours(1),
                6000
            )
            .is_empty()
        );
    }

    #[test]
    fn a_new_credential_does_not_fire_during_warmup() {
        let (mut r, mut book) = (production(), AlertBook::new(100));
        assert!(traffic(&mut r, &mut book, t0(), Duration::minutes(50), 20_000).is_empty());
    }

    #[test]
    fn demo_sized_config_fires_within_seconds_and_resolves() {
        let cfg = FrequencyConfig {
            bucket: Duration::seconds(1),
            window: Duration::seconds(10),
            baseline_half_life: Duration::seconds(60),
            warmup: Duration::seconds(20),
            factor: 5.0,
            min_rate_per_hour: 3600.0,
            ..Default::default()
        };
        let (mut r, mut book) = (FrequencySpike::new(cfg, 100), AlertBook::new(100));
        // 1 request/s for 60 s, then 20/s.
        assert!(traffic(&mut r, &mut book, t0(), Duration::seconds(60), 3600).is_empty());
        let spike = t0() + Duration::seconds(60);
        let alerts = traffic(&mut r, &mut book, spike, Duration::seconds(10), 72_000);
        assert!(alerts[0].created_at - spike <= Duration::seconds(5));
        // Back to normal: no more hits; the book resolves after the quiet time.
        let normal = spike + Duration::seconds(10);
        assert!(
            traffic(
                &mut r,
                &mut book,
                normal + Duration::seconds(15),
                Duration::seconds(30),
                3600
            )
            .is_empty()
        );
        let done = book.resolve_quiet(normal + Duration::seconds(45), |_| {
            Some(Duration::seconds(20))
        });
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].details.as_ref().unwrap()["state"], "resolved");
    }
}
