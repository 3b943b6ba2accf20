//! The `[detect]` section of the policy file, typed: one sub-table per rule, every field
//! optional with a production default. Durations are strings (`90s`, `5m`, `7d`; `0` allowed
//! where a zero makes sense) so a short demo can shrink every window.
//!
//! ```toml
//! [detect]
//! resolve_after = "15m"          # quiet time before an event-driven alert resolves
//! max_tracked_keys = 10000       # per rule: credentials / IPs remembered (oldest evicted)
//!
//! [detect.unexpected_country]
//! learn_period = "7d"            # learning ends when BOTH the period has passed…
//! learn_min_events = 20          # …and this many located requests were seen
//!
//! [detect.frequency_spike]
//! bucket = "1m"                  # resolution of the rate
//! window = "5m"                  # "now" = the rate over the last window
//! baseline_half_life = "1h"      # EWMA over the buckets that left the window
//! warmup = "1h"                  # a credential younger than this never spikes
//! factor = 10.0                  # alert when now >= factor x baseline …
//! min_baseline_per_hour = 60.0   # … with the baseline floored at this …
//! min_rate_per_hour = 1000.0     # … and now at least this
//!
//! [detect.failed_auth_spike]
//! window = "5m"
//! per_ip = 20                    # failed authentications per client IP in the window
//! per_client = 10                # per presented client id / certificate
//!
//! [detect.credential_expiry]
//! warn_days = [30, 7, 1]
//!
//! [detect.shared_credential]
//! window = "1h"
//! distinct_ips = 10
//! distinct_user_agents = 5
//!
//! [detect.unused_credential]
//! after = "30d"
//! ```
//! Every sub-table also takes `enabled = false`, and event-driven ones `resolve_after`.

use chrono::Duration;
use serde::{Deserialize, Deserializer};

/// Most buckets a frequency window may hold (memory per tracked credential).
pub const MAX_BUCKETS: i64 = 120;

/// `[detect]` could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid [detect] section: {0}")]
pub struct DetectConfigError(pub String);

/// Everything the detection engine can be told.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// Quiet time after which an event-driven alert resolves (rules may override).
    #[serde(deserialize_with = "duration")]
    pub resolve_after: Duration,
    /// Per rule: how many credentials / IPs are tracked before the stalest are evicted.
    pub max_tracked_keys: usize,
    /// How many alerts may be open at once (the stalest is dropped beyond).
    pub max_open_alerts: usize,
    pub unexpected_country: CountryConfig,
    pub frequency_spike: FrequencyConfig,
    pub failed_auth_spike: FailedAuthConfig,
    pub failed_auth_after_revocation: RuleToggle,
    pub credential_expiry: ExpiryConfig,
    pub shared_credential: SharedConfig,
    pub unused_credential: UnusedConfig,
    pub stale_crl: RuleToggle,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            resolve_after: Duration::minutes(15),
            max_tracked_keys: 10_000,
            max_open_alerts: 10_000,
            unexpected_country: CountryConfig::default(),
            frequency_spike: FrequencyConfig::default(),
            failed_auth_spike: FailedAuthConfig::default(),
            failed_auth_after_revocation: RuleToggle::default(),
            credential_expiry: ExpiryConfig::default(),
            shared_credential: SharedConfig::default(),
            unused_credential: UnusedConfig::default(),
            stale_crl: RuleToggle::default(),
        }
    }
}

impl DetectConfig {
    /// Windows shrunk so that `botgate demo`'s scenarios (a leaked token used from abroad, a
    /// runaway script, a shared token, a revoked token still presented, failed-auth floods)
    /// each raise their alert within seconds of starting: learning ends after 5 located
    /// requests, rates are per second over 10 s, alerts resolve after 30 quiet seconds.
    pub fn demo() -> Self {
        let mut cfg = Self {
            resolve_after: Duration::seconds(30),
            ..Self::default()
        };
        cfg.unexpected_country.learn_period = Duration::zero();
        cfg.unexpected_country.learn_min_events = 5;
        cfg.frequency_spike = FrequencyConfig {
            bucket: Duration::seconds(1),
            window: Duration::seconds(10),
            baseline_half_life: Duration::seconds(60),
            warmup: Duration::seconds(15),
            factor: 5.0,
            min_baseline_per_hour: 360.0,
            min_rate_per_hour: 3600.0,
            ..FrequencyConfig::default()
        };
        cfg.failed_auth_spike.window = Duration::seconds(30);
        cfg.failed_auth_spike.per_ip = 10;
        cfg.failed_auth_spike.per_client = 5;
        cfg.shared_credential.window = Duration::seconds(60);
        cfg.shared_credential.distinct_ips = 3;
        cfg.shared_credential.distinct_user_agents = 3;
        cfg
    }

    /// Parse the `[detect]` table of the policy file (an empty table gives the defaults).
    pub fn from_table(table: &toml::Table) -> Result<Self, DetectConfigError> {
        let cfg: DetectConfig = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| DetectConfigError(e.message().trim().to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check the relations serde cannot (window a multiple of bucket, thresholds > 0 …).
    pub fn validate(&self) -> Result<(), DetectConfigError> {
        let err = |m: &str| Err(DetectConfigError(m.to_string()));
        let f = &self.frequency_spike;
        if f.bucket <= Duration::zero() || f.window < f.bucket {
            return err("frequency_spike: bucket must be > 0 and window >= bucket");
        }
        let slots = f.window.num_milliseconds() / f.bucket.num_milliseconds();
        if f.window.num_milliseconds() % f.bucket.num_milliseconds() != 0 || slots > MAX_BUCKETS {
            return err(&format!(
                "frequency_spike: window must be a whole number (at most {MAX_BUCKETS}) of buckets"
            ));
        }
        if f.baseline_half_life <= Duration::zero() {
            return err("frequency_spike: baseline_half_life must be > 0");
        }
        if !(f.factor > 1.0 && f.factor.is_finite()) {
            return err("frequency_spike: factor must be a number > 1 (e.g. 10.0)");
        }
        if f.min_baseline_per_hour.is_nan() || f.min_rate_per_hour.is_nan() {
            return err("frequency_spike: rates must be numbers");
        }
        if self.failed_auth_spike.window <= Duration::zero() {
            return err("failed_auth_spike: window must be > 0");
        }
        if self.failed_auth_spike.per_ip == 0 || self.failed_auth_spike.per_client == 0 {
            return err("failed_auth_spike: per_ip and per_client must be >= 1");
        }
        let s = &self.shared_credential;
        if s.window <= Duration::zero() {
            return err("shared_credential: window must be > 0");
        }
        let cap = super::shared::MAX_DISTINCT as u32;
        if !(2..=cap).contains(&s.distinct_ips) || !(2..=cap).contains(&s.distinct_user_agents) {
            return err(&format!(
                "shared_credential: distinct_ips and distinct_user_agents must be between 2 and {cap}"
            ));
        }
        if self.credential_expiry.warn_days.iter().any(|d| *d <= 0) {
            return err(
                "credential_expiry: warn_days must be positive day counts, e.g. [30, 7, 1]",
            );
        }
        if self.max_tracked_keys == 0 || self.max_open_alerts == 0 {
            return err("max_tracked_keys and max_open_alerts must be >= 1");
        }
        Ok(())
    }
}

/// `enabled` plus an optional quiet time overriding `[detect] resolve_after`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleToggle {
    pub enabled: bool,
    #[serde(deserialize_with = "opt_duration")]
    pub resolve_after: Option<Duration>,
}

impl Default for RuleToggle {
    fn default() -> Self {
        Self {
            enabled: true,
            resolve_after: None,
        }
    }
}

/// `[detect.unexpected_country]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CountryConfig {
    pub enabled: bool,
    #[serde(deserialize_with = "opt_duration")]
    pub resolve_after: Option<Duration>,
    /// Learning lasts at least this long after the credential is first seen …
    #[serde(deserialize_with = "duration")]
    pub learn_period: Duration,
    /// … and until this many requests with a known country were seen.
    pub learn_min_events: u64,
}

impl Default for CountryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            resolve_after: None,
            learn_period: Duration::days(7),
            learn_min_events: 20,
        }
    }
}

/// `[detect.frequency_spike]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrequencyConfig {
    pub enabled: bool,
    #[serde(deserialize_with = "opt_duration")]
    pub resolve_after: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub bucket: Duration,
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
    #[serde(deserialize_with = "duration")]
    pub baseline_half_life: Duration,
    #[serde(deserialize_with = "duration")]
    pub warmup: Duration,
    pub factor: f64,
    pub min_baseline_per_hour: f64,
    pub min_rate_per_hour: f64,
}

impl Default for FrequencyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            resolve_after: None,
            bucket: Duration::minutes(1),
            window: Duration::minutes(5),
            baseline_half_life: Duration::hours(1),
            warmup: Duration::hours(1),
            factor: 10.0,
            min_baseline_per_hour: 60.0,
            min_rate_per_hour: 1000.0,
        }
    }
}

/// `[detect.failed_auth_spike]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailedAuthConfig {
    pub enabled: bool,
    #[serde(deserialize_with = "opt_duration")]
    pub resolve_after: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
    pub per_ip: u64,
    pub per_client: u64,
}

impl Default for FailedAuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            resolve_after: None,
            window: Duration::minutes(5),
            per_ip: 20,
            per_client: 10,
        }
    }
}

/// `[detect.credential_expiry]` (also gates `credential_expired`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExpiryConfig {
    pub enabled: bool,
    /// Alert stages in days before expiry; 7 days or less is critical.
    pub warn_days: Vec<i64>,
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            warn_days: vec![30, 7, 1],
        }
    }
}

/// `[detect.shared_credential]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SharedConfig {
    pub enabled: bool,
    #[serde(deserialize_with = "opt_duration")]
    pub resolve_after: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
    pub distinct_ips: u32,
    pub distinct_user_agents: u32,
}

impl Default for SharedConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            resolve_after: None,
            window: Duration::hours(1),
            distinct_ips: 10,
            distinct_user_agents: 5,
        }
    }
}

/// `[detect.unused_credential]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnusedConfig {
    pub enabled: bool,
    #[serde(deserialize_with = "duration")]
    pub after: Duration,
}

impl Default for UnusedConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            after: Duration::days(30),
        }
    }
}

/// `"0"` / `"0s"` or anything `crate::duration::parse` accepts.
fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim().trim_end_matches(['s', 'm', 'h', 'd', 'w', 'y']) == "0" {
        return Ok(Duration::zero());
    }
    crate::duration::parse(s).map_err(|e| e.to_string())
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DetectConfig, DetectConfigError> {
        DetectConfig::from_table(&s.parse::<toml::Table>().unwrap())
    }

    #[test]
    fn empty_table_gives_defaults() {
        assert_eq!(parse("").unwrap(), DetectConfig::default());
    }

    #[test]
    fn demo_sized_windows_parse() {
        let cfg = parse(
            r#"
            resolve_after = "10s"
            [unexpected_country]
            learn_period = "0"
            learn_min_events = 5
            [frequency_spike]
            bucket = "1s"
            window = "10s"
            warmup = "20s"
            resolve_after = "5s"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.resolve_after, Duration::seconds(10));
        assert_eq!(cfg.unexpected_country.learn_period, Duration::zero());
        assert_eq!(cfg.frequency_spike.window, Duration::seconds(10));
        assert_eq!(
            cfg.frequency_spike.resolve_after,
            Some(Duration::seconds(5))
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse("[frequency_spike]\nwindw = \"5m\"").unwrap_err();
        assert!(e.to_string().contains("windw"), "{e}");
        let e = parse("[shared_credential]\nwindow = \"5x\"").unwrap_err();
        assert!(e.to_string().contains("5x"), "{e}");
        let e = parse("[frequency_spike]\nbucket = \"7s\"\nwindow = \"10s\"").unwrap_err();
        assert!(e.to_string().contains("whole number"), "{e}");
        let e = parse("[frequency_spike]\nfactor = 0.5").unwrap_err();
        assert!(e.to_string().contains("factor"), "{e}");
    }
}
