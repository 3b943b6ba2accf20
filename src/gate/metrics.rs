//! Request counters kept with atomics (no locks on the request path).

use std::sync::atomic::{AtomicU64, Ordering};

/// Gate-wide counters.
#[derive(Debug, Default)]
pub struct GateMetrics {
    pub requests: AtomicU64,
    pub allowed: AtomicU64,
    pub denied: AtomicU64,
    pub bypassed: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub audit_refusals: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    pub spoofed_forwarded_for: AtomicU64,
}

impl GateMetrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
