//! This gate's side of the usage feed (`store::usage`): authenticated requests folded into one
//! row per (credential, client IP, user agent) between writes, so the other gates' fleet-wide
//! detectors count them. Folding costs one hash per event; the latest event of each group is
//! kept as its example.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::audit::AccessEvent;
use crate::store::usage::{MAX_ROWS, UsageRow};

/// Requests since the last write.
#[derive(Debug, Default)]
pub(crate) struct UsageBatch {
    hasher: std::collections::hash_map::RandomState,
    groups: HashMap<u64, (Arc<AccessEvent>, u64)>,
    /// Requests not kept because the batch already had `MAX_ROWS` groups.
    pub(crate) overflow: u64,
}

impl UsageBatch {
    /// Count `ev` if the fleet-wide rules would (an authenticated access).
    pub(crate) fn observe(&mut self, ev: &Arc<AccessEvent>) {
        if !crate::detect::counts_for_fleet(ev) {
            return;
        }
        let key = self.hasher.hash_one((
            &ev.service_token_id,
            &ev.service_token_name,
            &ev.cert_serial,
            &ev.cert_common_name,
            &ev.ip_address,
            &ev.user_agent,
        ));
        if let Some((latest, n)) = self.groups.get_mut(&key) {
            *latest = ev.clone();
            *n += 1;
        } else if self.groups.len() < MAX_ROWS {
            self.groups.insert(key, (ev.clone(), 1));
        } else {
            self.overflow += 1;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The rows to write, emptying the batch.
    pub(crate) fn take(&mut self) -> Vec<UsageRow> {
        self.groups
            .drain()
            .map(|(_, (ev, requests))| UsageRow {
                at: ev.created_at,
                requests,
                event: ev.to_json_line(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::EventKind;

    fn ev(ip: &str, ua: &str) -> Arc<AccessEvent> {
        let mut e = AccessEvent::empty(EventKind::Access, chrono::Utc::now(), "r".into());
        e.allowed = true;
        e.service_token_id = Some("abc.access".into());
        e.service_token_name = Some("ci-shared-prod".into());
        e.ip_address = Some(ip.into());
        e.user_agent = Some(ua.into());
        Arc::new(e)
    }

    #[test]
    fn requests_fold_per_credential_ip_and_user_agent() {
        let mut b = UsageBatch::default();
        for _ in 0..3 {
            b.observe(&ev("10.0.0.1", "curl/8"));
        }
        b.observe(&ev("10.0.0.2", "curl/8"));
        let mut failed = (*ev("10.0.0.3", "curl/8")).clone();
        failed.deny_reason = Some("bad_secret".into());
        b.observe(&Arc::new(failed));
        let mut unidentified = (*ev("10.0.0.4", "curl/8")).clone();
        unidentified.service_token_id = None;
        unidentified.service_token_name = None;
        b.observe(&Arc::new(unidentified));
        let mut rows: Vec<u64> = b.take().iter().map(|r| r.requests).collect();
        rows.sort();
        assert_eq!(rows, [1, 3]);
        assert!(b.is_empty());
    }
}
