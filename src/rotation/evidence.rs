//! Traffic evidence for a rotation, computed from the audit stream: per credential (old vs new)
//! request counts over time, last seen, the policies that allowed it, and per client IP which
//! credential it used last, so a staggered rollout shows who is left.
//!
//! Tokens are told apart by client id, certificates by SHA-256 fingerprint (two certificates of
//! a rotation share their CN). The JSONL log is read from the byte offset recorded when the
//! rotation started (events older than the start are ignored), and `EvidenceReader` remembers
//! where it stopped, so polling stays cheap; the console may instead feed events from the bus
//! to `Evidence::ingest`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{CredentialKind, PolicyRef, Rotation};
use crate::audit::{AccessEvent, ConnectionMethod, EventKind};
use crate::duration::ago;

/// Width of one timeline bucket, in seconds.
pub const BUCKET_SECS: i64 = 10;

/// Which credential of the rotation an event used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Which {
    Old,
    New,
}

/// Traffic of one credential since the rotation started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CredentialTraffic {
    /// Access events that presented this credential (allowed or not).
    pub requests: u64,
    pub allowed: u64,
    pub denied: u64,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub last_ip: Option<String>,
    pub last_user_agent: Option<String>,
    /// Allowed requests by the policy that allowed them.
    pub allowed_by_policy: BTreeMap<PolicyRef, u64>,
    /// Refused requests by `deny_reason`.
    pub deny_reasons: BTreeMap<String, u64>,
    /// `last_seen` comes from the store (another gate saw it after this audit log did).
    pub last_seen_elsewhere: bool,
}

impl CredentialTraffic {
    /// The store saw the credential at `at` (through any gate): later than this log did, it
    /// becomes the last sighting.
    pub fn seen_by_the_store(&mut self, at: DateTime<Utc>, ip: Option<String>) {
        if self.last_seen.is_none_or(|last| at > last) {
            self.last_seen = Some(at);
            self.last_ip = ip;
            self.last_seen_elsewhere = true;
        }
    }
}

/// One client IP and the credential it used last.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientTraffic {
    pub ip: String,
    pub last_credential: Which,
    pub last_seen: DateTime<Utc>,
    pub old_requests: u64,
    pub new_requests: u64,
    pub user_agent: Option<String>,
}

/// Everything the audit stream says about a rotation's two credentials.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub old: CredentialTraffic,
    pub new: CredentialTraffic,
    /// By client IP.
    pub clients: BTreeMap<String, ClientTraffic>,
    /// Bucket start (unix seconds, multiple of `BUCKET_SECS`) → `[old, new]` request counts.
    pub timeline: BTreeMap<i64, [u64; 2]>,
    /// The log shrank since the rotation started (truncated or rotated); reading restarted at 0.
    pub log_reset: bool,
    /// Lines naming a credential of the rotation that were not valid audit events.
    pub unreadable_lines: u64,
    /// Requests counted from other gates (the store's usage feed), included in the above.
    pub from_other_gates: u64,
    /// Ray ids of this log's counted events from the usage feed's window (`store::usage::KEEP`),
    /// so a feed row this log already holds is not counted twice.
    pub recent_rays: std::collections::HashSet<String>,
}

/// The identifiers an event must carry to count for a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceTarget {
    pub kind: CredentialKind,
    pub old_key: String,
    pub new_key: Option<String>,
    /// In-place token rotations: old and new share the Client ID and are told apart by the
    /// event's `secret_version`.
    pub versions: Option<(u32, u32)>,
    /// Events before this are not evidence: the gate's writer may flush a request made before
    /// the rotation started after the offset was taken.
    pub since: DateTime<Utc>,
}

impl EvidenceTarget {
    pub fn of(r: &Rotation) -> Self {
        Self {
            kind: r.kind,
            old_key: r.old.key.clone(),
            new_key: r.new.as_ref().map(|n| n.key.clone()),
            versions: r
                .old
                .secret_version
                .zip(r.new.as_ref().and_then(|n| n.secret_version))
                .filter(|_| r.in_place()),
            since: r.created_at,
        }
    }

    /// Which credential an access event used, if one of the two. A token request over mTLS
    /// also carries certificate fields, so the connection method decides what identified it.
    pub fn classify(&self, ev: &AccessEvent) -> Option<Which> {
        // Audit times and the rotation's start are both whole milliseconds: an event in the
        // start's millisecond may be a request made just before it, so only later ones count.
        if ev.event != EventKind::Access || ev.created_at <= self.since {
            return None;
        }
        let key = match (self.kind, ev.connection_method) {
            (CredentialKind::Token, ConnectionMethod::ServiceToken) => {
                ev.service_token_id.as_deref()
            }
            (CredentialKind::Cert, ConnectionMethod::Mtls) => ev.cert_fingerprint_sha256.as_deref(),
            _ => None,
        }?;
        if let Some((old, new)) = self.versions {
            return match ev.secret_version {
                _ if key != self.old_key => None,
                Some(v) if v == old => Some(Which::Old),
                Some(v) if v == new => Some(Which::New),
                // A refusal of this Client ID's secret (bad or superseded): the old one's
                // holders are the ones still sending something stale.
                _ => Some(Which::Old),
            };
        }
        if key == self.old_key {
            Some(Which::Old)
        } else if self.new_key.as_deref() == Some(key) {
            Some(Which::New)
        } else {
            None
        }
    }

    /// Cheap pre-filter on a raw line: could it name one of the two credentials?
    fn may_match(&self, line: &str) -> bool {
        line.contains(self.old_key.as_str())
            || self.new_key.as_deref().is_some_and(|k| line.contains(k))
    }
}

impl Evidence {
    /// Count one event (ignored unless it used one of the target's credentials).
    pub fn ingest(&mut self, target: &EvidenceTarget, ev: &AccessEvent) {
        if self.ingest_n(target, ev, 1)
            && ev.created_at
                >= Utc::now() - crate::store::usage::KEEP - chrono::Duration::minutes(1)
        {
            self.recent_rays.insert(ev.ray_id.clone());
        }
    }

    /// Count `requests` requests like `ev` that went through another gate (a usage-feed row),
    /// unless this log holds the row's event (the row is this log's gate's own).
    pub fn ingest_remote(&mut self, target: &EvidenceTarget, ev: &AccessEvent, requests: u64) {
        if !self.recent_rays.contains(&ev.ray_id) && self.ingest_n(target, ev, requests) {
            self.from_other_gates += requests;
        }
    }

    /// Count `n` requests like `ev`; whether it names one of the target's credentials.
    fn ingest_n(&mut self, target: &EvidenceTarget, ev: &AccessEvent, n: u64) -> bool {
        let Some(which) = target.classify(ev) else {
            return false;
        };
        let t = match which {
            Which::Old => &mut self.old,
            Which::New => &mut self.new,
        };
        t.requests += n;
        if ev.allowed {
            t.allowed += n;
            if let (Some(app), Some(policy)) = (&ev.app_name, &ev.policy_name) {
                *t.allowed_by_policy
                    .entry(PolicyRef {
                        app: app.clone(),
                        policy: policy.clone(),
                    })
                    .or_default() += n;
            }
        } else {
            t.denied += n;
            let reason = ev.deny_reason.clone().unwrap_or_else(|| "unknown".into());
            *t.deny_reasons.entry(reason).or_default() += n;
        }
        let at = ev.created_at;
        t.first_seen = Some(t.first_seen.map_or(at, |f| f.min(at)));
        if t.last_seen.is_none_or(|l| at >= l) {
            t.last_seen = Some(at);
            t.last_ip = ev.ip_address.clone();
            t.last_user_agent = ev.user_agent.clone();
        }
        let bucket = at.timestamp().div_euclid(BUCKET_SECS) * BUCKET_SECS;
        self.timeline.entry(bucket).or_default()[which as usize] += n;
        if let Some(ip) = &ev.ip_address {
            let c = self
                .clients
                .entry(ip.clone())
                .or_insert_with(|| ClientTraffic {
                    ip: ip.clone(),
                    last_credential: which,
                    last_seen: at,
                    old_requests: 0,
                    new_requests: 0,
                    user_agent: None,
                });
            match which {
                Which::Old => c.old_requests += n,
                Which::New => c.new_requests += n,
            }
            if at >= c.last_seen {
                c.last_seen = at;
                c.last_credential = which;
                c.user_agent = ev.user_agent.clone();
            }
        }
        true
    }

    /// Traffic of one credential.
    pub fn traffic(&self, which: Which) -> &CredentialTraffic {
        match which {
            Which::Old => &self.old,
            Which::New => &self.new,
        }
    }

    /// Clients whose last request used the old credential, most recent first.
    pub fn stragglers(&self) -> Vec<&ClientTraffic> {
        let mut v: Vec<_> = self
            .clients
            .values()
            .filter(|c| c.last_credential == Which::Old)
            .collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.last_seen));
        v
    }

    /// The policies new-credential requests must go through to count: the intended ones plus
    /// any seen allowing the old credential.
    pub fn counted_policies(&self, intended: &[PolicyRef]) -> Vec<PolicyRef> {
        let mut v: Vec<PolicyRef> = intended.to_vec();
        v.extend(self.old.allowed_by_policy.keys().cloned());
        v.sort();
        v.dedup();
        v
    }

    /// Allowed new-credential requests through the counted policies.
    pub fn new_requests_through(&self, intended: &[PolicyRef]) -> u64 {
        let counted = self.counted_policies(intended);
        self.new
            .allowed_by_policy
            .iter()
            .filter(|(p, _)| counted.contains(p))
            .map(|(_, n)| n)
            .sum()
    }

    /// Human lines: both credentials' traffic and who is left on the old one.
    pub fn summary_lines(&self, r: &Rotation, now: DateTime<Utc>) -> Vec<String> {
        let mut lines = vec![describe("old", &r.old.label(), &self.old, now)];
        if let Some(new) = &r.new {
            lines.push(describe("new", &new.label(), &self.new, now));
        }
        let stragglers = self.stragglers();
        if !stragglers.is_empty() {
            let list: Vec<String> = stragglers
                .iter()
                .take(5)
                .map(|c| client_label(c, now))
                .collect();
            let more = stragglers.len().saturating_sub(5);
            lines.push(format!(
                "clients still on the old credential: {}{}",
                list.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ));
        }
        let switched = self.clients.len() - stragglers.len();
        if switched > 0 {
            lines.push(format!(
                "clients on the new credential: {switched} of {} seen",
                self.clients.len()
            ));
        }
        if self.log_reset {
            lines.push("the audit log shrank since the rotation started (truncated or rotated); counts include what was read before".into());
        }
        lines
    }
}

fn describe(which: &str, label: &str, t: &CredentialTraffic, now: DateTime<Utc>) -> String {
    let Some(last) = t.last_seen else {
        return format!("{which} {label}: not seen since the rotation started");
    };
    let mut s = format!(
        "{which} {label}: seen {} {}, {} allowed",
        t.requests,
        plural(t.requests, "time", "times"),
        t.allowed
    );
    if t.denied > 0 {
        let reasons: Vec<String> = t
            .deny_reasons
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        s.push_str(&format!(", {} refused ({})", t.denied, reasons.join(", ")));
    }
    s.push_str(&format!(", last {}", ago(now - last)));
    if let Some(ip) = &t.last_ip {
        s.push_str(&format!(" from {ip}"));
    }
    if let Some(ua) = &t.last_user_agent {
        s.push_str(&format!(" ({ua})"));
    }
    s
}

/// `127.0.2.7 (last 3s ago, curl/8.5)`.
pub(crate) fn client_label(c: &ClientTraffic, now: DateTime<Utc>) -> String {
    match &c.user_agent {
        Some(ua) => format!("{} (last {}, {ua})", c.ip, ago(now - c.last_seen)),
        None => format!("{} (last {})", c.ip, ago(now - c.last_seen)),
    }
}

pub(crate) fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// How far before the end of the log a new rotation starts reading: more than the audit
/// writer buffers (256 KiB), so requests made just after the start but flushed a moment later
/// are not missed. Older events in that window are dropped by `EvidenceTarget::since`.
pub const START_REWIND_BYTES: u64 = 512 * 1024;

/// Where a rotation starting now should read the log from: a line boundary about
/// `START_REWIND_BYTES` before the end (0 for a small or missing log).
pub fn start_offset(path: &Path) -> u64 {
    let Ok(len) = std::fs::metadata(path).map(|m| m.len()) else {
        return 0;
    };
    let from = len.saturating_sub(START_REWIND_BYTES);
    if from == 0 {
        return 0;
    }
    let mut window = Vec::new();
    let read = std::fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(from))?;
        f.take(len - from).read_to_end(&mut window)
    });
    match read {
        Ok(_) => window
            .iter()
            .position(|b| *b == b'\n')
            .map_or(len, |i| from + i as u64 + 1),
        Err(_) => len,
    }
}

/// Incremental reader of the JSONL audit log for one rotation: each `poll` reads only the
/// complete lines written since the last one.
#[derive(Debug, Clone)]
pub struct EvidenceReader {
    path: PathBuf,
    offset: u64,
    target: EvidenceTarget,
    evidence: Evidence,
}

impl EvidenceReader {
    /// Start reading `path` at byte `offset`.
    pub fn new(path: PathBuf, offset: u64, target: EvidenceTarget) -> Self {
        Self {
            path,
            offset,
            target,
            evidence: Evidence::default(),
        }
    }

    /// A reader over the rotation's audit log from where the rotation started.
    pub fn for_rotation(r: &Rotation) -> Self {
        Self::new(
            r.details.audit_log.clone(),
            r.details.audit_offset,
            EvidenceTarget::of(r),
        )
    }

    /// Read what was appended since the last poll. Returns whether any event counted. A log
    /// that does not exist yet is empty evidence, not an error.
    pub fn poll(&mut self) -> std::io::Result<bool> {
        let len = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if len < self.offset {
            self.evidence.log_reset = true;
            self.offset = 0;
        }
        if len == self.offset {
            return Ok(false);
        }
        let mut file = std::fs::File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.offset))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut counted = false;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            // Stop at the end, or before a line the writer has not finished yet.
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            self.offset += n as u64;
            let Ok(text) = std::str::from_utf8(&line) else {
                continue;
            };
            if !self.target.may_match(text) {
                continue;
            }
            match serde_json::from_str::<AccessEvent>(text.trim_end()) {
                Ok(ev) => {
                    let before = self.evidence.old.requests + self.evidence.new.requests;
                    self.evidence.ingest(&self.target, &ev);
                    counted |= self.evidence.old.requests + self.evidence.new.requests > before;
                }
                Err(_) => self.evidence.unreadable_lines += 1,
            }
        }
        Ok(counted)
    }

    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    pub fn into_evidence(self) -> Evidence {
        self.evidence
    }

    /// The byte offset the next poll starts at.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

#[cfg(test)]
#[path = "evidence_tests.rs"]
mod tests;
