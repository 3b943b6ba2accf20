//! Injected time, so countdowns, expiry and rotation windows are testable without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeZone, Utc};

/// A source of "now".
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to (tests, snapshots).
#[derive(Debug, Clone)]
pub struct FixedClock(Arc<AtomicI64>);

impl FixedClock {
    /// A clock stopped at `at` (millisecond precision).
    pub fn at(at: DateTime<Utc>) -> Self {
        Self(Arc::new(AtomicI64::new(at.timestamp_millis())))
    }
    /// Move the clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.0.fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        // A value set from a valid DateTime always converts back.
        Utc.timestamp_millis_opt(self.0.load(Ordering::SeqCst))
            .single()
            .unwrap_or_default()
    }
}

/// Shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// A timestamp for people and `--json` output: RFC 3339, UTC, whole seconds.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
