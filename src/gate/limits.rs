//! Rate limits per credential at the gate: GCRA (the `governor` crate), one bucket per
//! (scope, credential). A scope is a token's own limit (`token create --rate`) or one policy's
//! `rate_limit`; the credential is the token's Client ID, the certificate's fingerprint, or,
//! for a request without one, the client IP. State is in memory, per gate: with several gates
//! each enforces its share, `limit / gates alive` (`bounds::RateLimit::per_gate`), from the
//! store's heartbeats. An exact fleet-wide limit would need a shared counter; it is out of scope.
//!
//! The answer carries what the `RateLimit-*` fields of draft-ietf-httpapi-ratelimit-headers-06
//! need; `apply_headers` writes them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use hyper::HeaderMap;
use hyper::header::HeaderValue;

use crate::bounds::RateLimit;

/// Whose bucket a request draws from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// A service token, by Client ID.
    Token(Arc<str>),
    /// A client certificate, by SHA-256 fingerprint.
    Cert(Arc<str>),
    /// An OIDC workload, by its identity (`oidc:<issuer>/<sub>`).
    Workload(Arc<str>),
    /// A request without a credential (an `allow` or `bypass` policy), by client IP.
    Address(IpAddr),
}

/// Which limit a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The token's own `--rate`, on every app.
    Token,
    /// One policy's `rate_limit` (its `policy::PolicyRateLimit::scope`: app and policy name).
    Policy(Arc<str>),
}

/// What one check found: enough for the response headers and the audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Over the limit: refuse (or, in shadow mode, mark).
    pub limited: bool,
    /// Requests this gate allows at once (its share of the burst).
    pub limit: u32,
    /// Requests left at once after this one.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// Until the next request would be allowed (only when limited).
    pub retry_after: Option<Duration>,
    /// The time a full burst takes to refill: the window of `RateLimit-Policy`.
    pub window: Duration,
}

impl Outcome {
    /// Of two outcomes for one request (token and policy limit), the one the client must heed:
    /// a refusal, the longer wait, else the fewer requests left.
    pub fn stricter(self, other: Outcome) -> Outcome {
        match (self.limited, other.limited) {
            (true, false) => self,
            (false, true) => other,
            (true, true) if other.retry_after > self.retry_after => other,
            (true, true) => self,
            (false, false) if other.remaining < self.remaining => other,
            (false, false) => self,
        }
    }

    /// Write `RateLimit-Limit`, `-Remaining`, `-Reset`, `RateLimit-Policy` (`LIMIT;w=WINDOW`)
    /// and, when limited, `Retry-After`; all in whole seconds, rounded up.
    pub fn apply_headers(&self, h: &mut HeaderMap) {
        h.insert("ratelimit-limit", HeaderValue::from(self.limit));
        h.insert("ratelimit-remaining", HeaderValue::from(self.remaining));
        h.insert("ratelimit-reset", HeaderValue::from(ceil_secs(self.reset)));
        let policy = format!("{};w={}", self.limit, ceil_secs(self.window));
        if let Ok(v) = HeaderValue::from_str(&policy) {
            h.insert("ratelimit-policy", v);
        }
        if let Some(wait) = self.retry_after {
            h.insert(
                hyper::header::RETRY_AFTER,
                HeaderValue::from(ceil_secs(wait).max(1)),
            );
        }
    }

    /// The audit event's `details.rate_limit`: which limit, and what the gate enforced.
    pub fn details(&self, scope: &'static str, limit: &RateLimit, gates: u32) -> serde_json::Value {
        serde_json::json!({
            "scope": scope,
            "limit": limit.to_string(),
            "gates_alive": gates,
            "gate_burst": self.limit,
            "retry_after_s": self.retry_after.map(|d| ceil_secs(d).max(1)),
        })
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

type Keyed<C> =
    governor::RateLimiter<LimitKey, DashMapStateStore<LimitKey>, C, StateInformationMiddleware>;

/// The buckets of one (scope, limit, gates alive): a change of limit or of the number of
/// gates starts a fresh set (the old one is dropped by `housekeep`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ScopeKey {
    scope: Scope,
    limit: RateLimit,
    gates: u32,
}

/// Every bucket of this gate, shared by all its connections and workers.
#[derive(Debug)]
pub struct RateLimits<C: Clock = MonotonicClock> {
    clock: C,
    gates: AtomicU32,
    scopes: RwLock<HashMap<ScopeKey, Arc<Keyed<C>>>>,
}

impl Default for RateLimits<MonotonicClock> {
    fn default() -> Self {
        Self::new(MonotonicClock)
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// Buckets timed by `clock` (a fake one in tests), one gate alive until told otherwise.
    pub fn new(clock: C) -> Self {
        Self {
            clock,
            gates: AtomicU32::new(1),
            scopes: Default::default(),
        }
    }

    /// The gates alive on this store (from the heartbeats; never below 1).
    pub fn gates_alive(&self) -> u32 {
        self.gates.load(Ordering::Relaxed).max(1)
    }

    pub fn set_gates_alive(&self, gates: u32) {
        self.gates.store(gates.max(1), Ordering::Relaxed);
    }

    /// Take one request from `key`'s bucket in `scope` under `limit` (this gate's share). A
    /// refused request takes nothing (GCRA), so shadow mode counts exactly what enforcing
    /// would refuse.
    pub fn check(&self, scope: &Scope, limit: &RateLimit, key: &LimitKey) -> Outcome {
        let gates = self.gates_alive();
        let quota = limit.per_gate(gates);
        let limiter = self.scope(scope, limit, gates, quota);
        let burst = quota.burst_size().get();
        let interval = quota.replenish_interval();
        let window = quota.burst_size_replenished_in();
        match limiter.check_key(key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Outcome {
                    limited: false,
                    limit: burst,
                    remaining,
                    reset: interval * burst.saturating_sub(remaining),
                    retry_after: None,
                    window,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Outcome {
                    limited: true,
                    limit: burst,
                    remaining: 0,
                    reset: wait + interval * burst.saturating_sub(1),
                    retry_after: Some(wait),
                    window,
                }
            }
        }
    }

    /// The buckets of (scope, limit, gates), made on first use.
    fn scope(
        &self,
        scope: &Scope,
        limit: &RateLimit,
        gates: u32,
        quota: governor::Quota,
    ) -> Arc<Keyed<C>> {
        let key = ScopeKey {
            scope: scope.clone(),
            limit: *limit,
            gates,
        };
        // A poisoned lock only means another request panicked mid-insert; the map is intact.
        if let Some(found) = self
            .scopes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return found.clone();
        }
        let mut scopes = self.scopes.write().unwrap_or_else(|e| e.into_inner());
        scopes
            .entry(key)
            .or_insert_with(|| {
                Arc::new(
                    governor::RateLimiter::dashmap_with_clock(quota, self.clock.clone())
                        .with_middleware::<StateInformationMiddleware>(),
                )
            })
            .clone()
    }

    /// Forget buckets that are full again (as good as new) and bucket sets for a number of
    /// gates that is no longer current; run every couple of seconds, never per request.
    pub fn housekeep(&self) {
        let gates = self.gates_alive();
        let mut scopes = self.scopes.write().unwrap_or_else(|e| e.into_inner());
        scopes.retain(|key, limiter| {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            key.gates == gates && !limiter.is_empty()
        });
    }

    /// How many bucket sets are held.
    pub fn scope_count(&self) -> usize {
        self.scopes.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn token(id: &str) -> LimitKey {
        LimitKey::Token(id.into())
    }

    #[test]
    fn a_burst_above_the_limit_is_refused_with_the_time_to_wait() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::new(clock.clone());
        let rate = RateLimit::parse("60/min", Some(5)).unwrap();
        let outcomes: Vec<Outcome> = (0..8)
            .map(|_| limits.check(&Scope::Token, &rate, &token("a")))
            .collect();
        let limited = outcomes.iter().filter(|o| o.limited).count();
        assert_eq!(limited, 3);
        assert_eq!(outcomes[0].remaining, 4);
        assert_eq!(outcomes[4].remaining, 0);
        let refused = outcomes[5];
        assert_eq!(refused.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(refused.reset, Duration::from_secs(5));
        assert_eq!(refused.window, Duration::from_secs(5));
        // Another credential has its own bucket; time refills this one.
        assert!(!limits.check(&Scope::Token, &rate, &token("b")).limited);
        clock.advance(Duration::from_secs(1));
        assert!(!limits.check(&Scope::Token, &rate, &token("a")).limited);
        assert!(limits.check(&Scope::Token, &rate, &token("a")).limited);
    }

    #[test]
    fn headers_follow_the_draft_in_whole_seconds() {
        let limits = RateLimits::new(FakeRelativeClock::default());
        let rate = RateLimit::parse("60/h", Some(2)).unwrap();
        let scope = Scope::Policy("api\0ci".into());
        limits.check(&scope, &rate, &token("a"));
        limits.check(&scope, &rate, &token("a"));
        let refused = limits.check(&scope, &rate, &token("a"));
        let mut h = HeaderMap::new();
        refused.apply_headers(&mut h);
        let get = |k: &str| h.get(k).unwrap().to_str().unwrap().to_string();
        assert_eq!(get("retry-after"), "60");
        assert_eq!(get("ratelimit-limit"), "2");
        assert_eq!(get("ratelimit-remaining"), "0");
        assert_eq!(get("ratelimit-reset"), "120");
        assert_eq!(get("ratelimit-policy"), "2;w=120");
    }

    #[test]
    fn each_gate_enforces_its_share_and_old_shares_are_dropped() {
        let limits = RateLimits::new(FakeRelativeClock::default());
        let rate = RateLimit::parse("60/min", Some(6)).unwrap();
        limits.set_gates_alive(3);
        let allowed = (0..10)
            .filter(|_| !limits.check(&Scope::Token, &rate, &token("a")).limited)
            .count();
        assert_eq!(allowed, 2, "a third of the burst of 6");
        limits.set_gates_alive(0);
        assert_eq!(limits.gates_alive(), 1, "never fewer than one");
        limits.housekeep();
        assert_eq!(limits.scope_count(), 0, "the share for 3 gates is gone");
    }

    #[test]
    fn stricter_prefers_a_refusal_then_the_longer_wait() {
        let ok = Outcome {
            limited: false,
            limit: 5,
            remaining: 3,
            reset: Duration::ZERO,
            retry_after: None,
            window: Duration::from_secs(5),
        };
        let low = Outcome { remaining: 1, ..ok };
        let refused = Outcome {
            limited: true,
            remaining: 0,
            retry_after: Some(Duration::from_secs(2)),
            ..ok
        };
        let longer = Outcome {
            retry_after: Some(Duration::from_secs(9)),
            ..refused
        };
        assert_eq!(ok.stricter(low), low);
        assert_eq!(low.stricter(refused), refused);
        assert_eq!(refused.stricter(longer), longer);
        assert_eq!(longer.stricter(ok), longer);
    }
}
