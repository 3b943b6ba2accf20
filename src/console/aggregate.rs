//! Bounded traffic aggregates, so memory and per-frame work stay flat for any traffic volume:
//! per-second buckets (allowed / denied / per connection method) for the last few minutes,
//! per-minute buckets for the last day (the chart's long time windows), a per-identity table
//! with a cap on identities, and a ring buffer of recent raw events.
//! Recording an event is O(1) amortized; nothing here scans all events ever seen.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::audit::{AccessEvent, ConnectionMethod, EventKind};

use super::compact::EventFields;
pub use super::compact::EventRing;
use super::request_latency::AppLatency;

/// Seconds of per-second history kept for the charts (15 minutes: the longest time window
/// drawn from seconds; longer ones read `Traffic::minutes`).
pub const DEFAULT_WINDOW_SECS: usize = 900;
/// Minutes of per-minute history kept for the charts (24 hours, the longest time window).
pub const MINUTE_BUCKETS: usize = 24 * 60;
/// Raw events kept for the live tail and the Log view.
pub const DEFAULT_RING_CAPACITY: usize = 10_000;
/// Identities tracked at most; the least recently seen are dropped first.
pub const DEFAULT_MAX_IDENTITIES: usize = 10_000;
/// Identity label for requests that presented no credential.
pub const ANONYMOUS: &str = "(no credential)";
/// Distinct countries / apps remembered per identity.
const MAX_TAGS: usize = 6;
/// Seconds in the req/min window.
const MINUTE: usize = 60;

/// The connection methods, in the order `Bucket::by_method` counts them.
pub const METHODS: [ConnectionMethod; 4] = [
    ConnectionMethod::ServiceToken,
    ConnectionMethod::Mtls,
    ConnectionMethod::Oidc,
    ConnectionMethod::None,
];

/// Index of `m` in `METHODS`.
pub fn method_index(m: ConnectionMethod) -> usize {
    match m {
        ConnectionMethod::ServiceToken => 0,
        ConnectionMethod::Mtls => 1,
        ConnectionMethod::Oidc => 2,
        ConnectionMethod::None => 3,
    }
}

/// How much the aggregates may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub window_secs: usize,
    pub ring_capacity: usize,
    pub max_identities: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            window_secs: DEFAULT_WINDOW_SECS,
            ring_capacity: DEFAULT_RING_CAPACITY,
            max_identities: DEFAULT_MAX_IDENTITIES,
        }
    }
}

/// Everything the Traffic and Log views read.
#[derive(Debug, Clone)]
pub struct Traffic {
    pub seconds: SecondBuckets,
    /// The same counts per unix minute (`Bucket::sec` holds the minute number, `unix / 60`).
    pub minutes: SecondBuckets,
    pub identities: Identities,
    pub ring: EventRing,
    pub totals: Totals,
    /// The gates events came from (`node`), first seen first; at most `MAX_NODES`.
    pub nodes: Vec<Arc<str>>,
    /// When the oldest event recorded was created (how far back the history goes).
    pub oldest: Option<DateTime<Utc>>,
    /// Request latency per app and minute (p50 / p99 over time).
    pub latency: AppLatency,
}

/// Distinct gates the console keeps apart (`--attach` more than this merges the rest).
pub const MAX_NODES: usize = 64;

/// Counters since the console started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub events: u64,
    pub access: u64,
    pub allowed: u64,
    pub denied: u64,
    pub by_method: [u64; 4],
}

impl Traffic {
    pub fn new(limits: Limits) -> Self {
        Self {
            seconds: SecondBuckets::new(limits.window_secs),
            minutes: SecondBuckets::new(MINUTE_BUCKETS),
            identities: Identities::new(limits.max_identities),
            ring: EventRing::new(limits.ring_capacity),
            totals: Totals::default(),
            nodes: Vec::new(),
            oldest: None,
            latency: AppLatency::default(),
        }
    }

    /// Whether events came from more than one gate (the Log view then shows a node column).
    pub fn several_nodes(&self) -> bool {
        self.nodes.len() > 1
    }

    /// Count one event; returns its sequence number in the ring.
    pub fn record(&mut self, ev: &Arc<AccessEvent>) -> u64 {
        self.totals.events += 1;
        if self.oldest.is_none_or(|o| ev.created_at < o) {
            self.oldest = Some(ev.created_at);
        }
        if let Some(node) = &ev.node
            && self.nodes.len() < MAX_NODES
            && !self.nodes.iter().any(|n| n == node)
        {
            self.nodes.push(node.clone());
        }
        if ev.event == EventKind::Access {
            let m = method_index(ev.connection_method);
            self.totals.access += 1;
            self.totals.by_method[m] += 1;
            if ev.allowed {
                self.totals.allowed += 1;
            } else {
                self.totals.denied += 1;
            }
            let sec = ev.created_at.timestamp();
            let minute = sec.div_euclid(60);
            self.seconds.record(sec, ev.allowed, m);
            self.minutes.record(minute, ev.allowed, m);
            if (&**ev).is_rate_limited() {
                self.seconds.record_rate_limited(sec);
                self.minutes.record_rate_limited(minute);
            }
            self.identities.record(&**ev);
            if let (Some(ms), Some(app)) =
                (ev.latency_ms, ev.app_name.as_deref().or(ev.host.as_deref()))
            {
                self.latency.record(app, sec, ms);
            }
        }
        self.ring.push(ev)
    }
}

/// Counts for one second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Unix second this bucket counts.
    pub sec: i64,
    pub allowed: u32,
    pub denied: u32,
    /// Of these, requests over a rate limit (refused, or marked in shadow mode).
    pub rate_limited: u32,
    /// Requests per connection method, indexed like `METHODS`.
    pub by_method: [u32; 4],
}

impl Bucket {
    pub fn total(&self) -> u32 {
        self.allowed + self.denied
    }
}

/// A fixed ring of per-second buckets; a slot is reused when its second falls out of the window.
#[derive(Debug, Clone)]
pub struct SecondBuckets {
    slots: Box<[Bucket]>,
}

impl SecondBuckets {
    pub fn new(window_secs: usize) -> Self {
        Self {
            slots: vec![
                Bucket {
                    sec: i64::MIN,
                    ..Bucket::default()
                };
                window_secs.max(1)
            ]
            .into_boxed_slice(),
        }
    }

    /// Seconds of history kept.
    pub fn window(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, sec: i64) -> usize {
        // `rem_euclid` of a positive length is in 0..len.
        sec.rem_euclid(self.slots.len() as i64) as usize
    }

    /// Count one request at unix second `sec`. A request older than the window is not charted.
    pub fn record(&mut self, sec: i64, allowed: bool, method: usize) {
        let i = self.slot(sec);
        let b = &mut self.slots[i];
        if b.sec > sec {
            return;
        }
        if b.sec < sec {
            *b = Bucket {
                sec,
                ..Bucket::default()
            };
        }
        if allowed {
            b.allowed += 1;
        } else {
            b.denied += 1;
        }
        b.by_method[method.min(2)] += 1;
    }

    /// Mark one request already counted at `sec` as rate-limited.
    pub fn record_rate_limited(&mut self, sec: i64) {
        let i = self.slot(sec);
        if self.slots[i].sec == sec {
            self.slots[i].rate_limited += 1;
        }
    }

    /// The bucket for `sec` (zero when nothing was counted then, or it left the window).
    pub fn get(&self, sec: i64) -> Bucket {
        let b = self.slots[self.slot(sec)];
        if b.sec == sec {
            b
        } else {
            Bucket {
                sec,
                ..Bucket::default()
            }
        }
    }

    /// The `len` seconds ending at `end_sec`, oldest first (at most the window).
    pub fn series(&self, end_sec: i64, len: usize) -> impl Iterator<Item = Bucket> + '_ {
        let len = len.min(self.slots.len()) as i64;
        (end_sec - len + 1..=end_sec).map(move |s| self.get(s))
    }

    /// Average requests per second over the `secs` seconds ending at `end_sec`.
    pub fn rate(&self, end_sec: i64, secs: usize) -> f64 {
        let secs = secs.clamp(1, self.slots.len());
        let sum: u64 = self
            .series(end_sec, secs)
            .map(|b| u64::from(b.total()))
            .sum();
        sum as f64 / secs as f64
    }
}

/// Per-identity statistics, capped at `max` identities.
#[derive(Debug, Clone)]
pub struct Identities {
    map: HashMap<String, IdentityStats>,
    max: usize,
    /// Identities dropped to stay under the cap.
    pub evicted: u64,
}

impl Identities {
    pub fn new(max: usize) -> Self {
        Self {
            map: HashMap::new(),
            max: max.max(1),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Identities tracked at most.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The identities of `events` alone (access events only, as `Traffic::record` counts
    /// them): the table of one time window.
    pub fn of_events<'a, E: EventFields<'a>>(max: usize, events: impl Iterator<Item = E>) -> Self {
        let mut out = Self::new(max);
        for ev in events {
            out.add(ev);
        }
        out
    }

    /// Count one more event (access events only, as `Traffic::record` counts them).
    pub fn add<'a>(&mut self, ev: impl EventFields<'a>) {
        if ev.kind() == EventKind::Access {
            self.record(ev);
        }
    }

    pub fn get(&self, name: &str) -> Option<&IdentityStats> {
        self.map.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &IdentityStats> {
        self.map.values()
    }

    fn record<'a>(&mut self, ev: impl EventFields<'a>) {
        let name = ev.identity().unwrap_or(ANONYMOUS);
        if !self.map.contains_key(name) {
            if self.map.len() >= self.max {
                self.evict_oldest();
            }
            self.map.insert(
                name.to_string(),
                IdentityStats::new(name, ev.connection_method(), ev.created_at()),
            );
        }
        if let Some(stats) = self.map.get_mut(name) {
            stats.record(ev);
        }
    }

    /// Drop the least recently seen tenth in one pass, so a flood of new identities costs
    /// O(1) amortized per event instead of a scan per insert.
    fn evict_oldest(&mut self) {
        let drop = (self.max / 10).max(1);
        let mut seen: Vec<DateTime<Utc>> = self.map.values().map(|s| s.last_seen).collect();
        let k = drop.min(seen.len()) - 1;
        let (_, cutoff, _) = seen.select_nth_unstable(k);
        let cutoff = *cutoff;
        let before = self.map.len();
        let mut budget = drop;
        self.map.retain(|_, s| {
            if budget > 0 && s.last_seen <= cutoff {
                budget -= 1;
                false
            } else {
                true
            }
        });
        self.evicted += (before - self.map.len()) as u64;
    }
}

/// What the console knows about one identity (token name, cert CN, or `ANONYMOUS`).
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityStats {
    pub name: String,
    pub method: ConnectionMethod,
    pub total: u64,
    pub denied: u64,
    /// Requests over a rate limit (refused, or marked in shadow mode).
    pub rate_limited: u64,
    /// Requests refused because they came from outside the token's `--allow-ip` networks.
    pub ip_refused: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub countries: Tags,
    pub apps: Tags,
    /// Requests per second for the last minute, a ring indexed by `sec % 60`.
    minute: [u32; MINUTE],
    /// The newest second counted in `minute`.
    minute_sec: i64,
}

impl IdentityStats {
    fn new(name: &str, method: ConnectionMethod, at: DateTime<Utc>) -> Self {
        Self {
            name: name.to_string(),
            method,
            total: 0,
            denied: 0,
            rate_limited: 0,
            ip_refused: 0,
            first_seen: at,
            last_seen: at,
            countries: Tags::default(),
            apps: Tags::default(),
            minute: [0; MINUTE],
            minute_sec: i64::MIN,
        }
    }

    fn record<'a>(&mut self, ev: impl EventFields<'a>) {
        self.total += 1;
        if !ev.allowed() {
            self.denied += 1;
        }
        if ev.is_rate_limited() {
            self.rate_limited += 1;
        }
        if ev.deny_reason() == Some("token_ip_not_allowed") {
            self.ip_refused += 1;
        }
        let at = ev.created_at();
        if at > self.last_seen {
            self.last_seen = at;
        }
        self.method = ev.connection_method();
        if let Some(c) = ev.country() {
            self.countries.insert(c);
        }
        if let Some(a) = ev.app_name().or(ev.host()) {
            self.apps.insert(a);
        }
        let sec = at.timestamp();
        if self.minute_sec == i64::MIN || sec - self.minute_sec >= MINUTE as i64 {
            self.minute = [0; MINUTE];
            self.minute_sec = sec;
        } else if sec > self.minute_sec {
            for s in self.minute_sec + 1..=sec {
                self.minute[s.rem_euclid(MINUTE as i64) as usize] = 0;
            }
            self.minute_sec = sec;
        } else if self.minute_sec - sec >= MINUTE as i64 {
            return;
        }
        self.minute[sec.rem_euclid(MINUTE as i64) as usize] += 1;
    }

    /// Requests in the 60 seconds ending at `now_sec`.
    pub fn per_minute(&self, now_sec: i64) -> u64 {
        if self.minute_sec == i64::MIN {
            return 0;
        }
        (0..MINUTE as i64)
            .map(|k| self.minute_sec - k)
            .filter(|&s| s <= now_sec && s > now_sec - MINUTE as i64)
            .map(|s| u64::from(self.minute[s.rem_euclid(MINUTE as i64) as usize]))
            .sum()
    }

    /// Share of denied requests, 0–100.
    pub fn deny_pct(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.denied as f64 * 100.0 / self.total as f64
        }
    }
}

/// A small set of distinct labels (countries, apps); remembers that more were seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags {
    items: Vec<Box<str>>,
    /// More distinct values were seen than are kept.
    pub overflow: bool,
}

impl Tags {
    pub fn insert(&mut self, v: &str) {
        if self.items.iter().any(|i| &**i == v) {
            return;
        }
        if self.items.len() < MAX_TAGS {
            self.items.push(v.into());
        } else {
            self.overflow = true;
        }
    }

    pub fn contains_ignore_case(&self, v: &str) -> bool {
        self.items.iter().any(|i| i.eq_ignore_ascii_case(v))
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|s| &**s)
    }

    /// `RU,SG+` style: joined, with `+` when some were not kept.
    pub fn joined(&self) -> String {
        let mut s = self.items.join(",");
        if self.overflow {
            s.push('+');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ev(sec: i64, name: &str, allowed: bool) -> Arc<AccessEvent> {
        let mut e = AccessEvent::empty(
            EventKind::Access,
            Utc.timestamp_opt(sec, 0).unwrap(),
            format!("{sec}"),
        );
        e.allowed = allowed;
        e.service_token_name = Some(name.to_string());
        e.connection_method = ConnectionMethod::ServiceToken;
        Arc::new(e)
    }

    #[test]
    fn buckets_reuse_slots_and_drop_too_old() {
        let mut b = SecondBuckets::new(10);
        b.record(100, true, 0);
        b.record(100, false, 1);
        assert_eq!(b.get(100).total(), 2);
        b.record(110, true, 0); // same slot, newer second: reset
        assert_eq!(b.get(100).total(), 0);
        assert_eq!(b.get(110).allowed, 1);
        b.record(100, true, 0); // older than what the slot holds: ignored
        assert_eq!(b.get(110).total(), 1);
        let s: Vec<u32> = b.series(110, 3).map(|x| x.total()).collect();
        assert_eq!(s, vec![0, 0, 1]);
        assert!((b.rate(110, 2) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn per_minute_slides() {
        let mut t = Traffic::new(Limits::default());
        for s in 0..120 {
            t.record(&ev(1000 + s, "a", s % 4 != 0));
        }
        let a = t.identities.get("a").unwrap();
        assert_eq!(a.total, 120);
        assert_eq!(a.denied, 30);
        assert_eq!(a.per_minute(1119), 60);
        assert_eq!(a.per_minute(1149), 30);
        assert_eq!(a.per_minute(1500), 0);
    }

    #[test]
    fn identities_stay_under_the_cap() {
        let mut t = Traffic::new(Limits {
            max_identities: 100,
            ..Limits::default()
        });
        for i in 0..10_000 {
            t.record(&ev(1000 + i, &format!("id-{i}"), true));
        }
        assert!(t.identities.len() <= 100);
        assert!(t.identities.get("id-9999").is_some(), "the newest survives");
        assert!(t.identities.get("id-0").is_none(), "the oldest goes first");
    }

    #[test]
    fn ring_keeps_newest_with_stable_sequence_numbers() {
        let mut r = EventRing::new(3);
        for i in 0..5 {
            r.push(&ev(i, "a", true));
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.first_seq(), 2);
        assert!(r.get(1).is_none());
        assert_eq!(r.get(4).unwrap().ray_id(), "4");
        assert_eq!(r.newest(0).unwrap().ray_id(), "4");
        assert_eq!(r.newest(2).unwrap().ray_id(), "2");
        assert!(r.newest(3).is_none());
    }

    #[test]
    fn minutes_count_what_seconds_count_for_a_day() {
        let mut t = Traffic::new(Limits::default());
        t.record(&ev(6_000, "a", true));
        t.record(&ev(6_059, "a", false));
        t.record(&ev(6_060, "a", true));
        assert_eq!(t.minutes.get(100).total(), 2);
        assert_eq!(t.minutes.get(100).denied, 1);
        assert_eq!(t.minutes.get(101).total(), 1);
        t.record(&ev(6_000 + 23 * 3600, "a", true));
        assert_eq!(t.minutes.get(100).total(), 2, "a day is kept");
    }

    #[test]
    fn seq_range_finds_the_events_of_an_interval() {
        let mut r = EventRing::new(4);
        for i in 0..6 {
            r.push(&ev(100 + i, "a", true));
        }
        // Held: seconds 102..=105 as sequence numbers 2..=5.
        assert_eq!(r.seq_range(103, Some(105)), 3..5);
        assert_eq!(r.seq_range(0, None), 2..6);
        assert_eq!(r.seq_range(200, None), 6..6);
        assert_eq!(
            r.seq_range(104, Some(90)),
            4..4,
            "an empty range, never reversed"
        );
        let ids = Identities::of_events(10, (3..5).filter_map(|q| r.get(q)));
        assert_eq!(ids.get("a").map(|i| i.total), Some(2));
    }

    #[test]
    fn tags_cap_and_mark_overflow() {
        let mut t = Tags::default();
        for c in ["RU", "SG", "RU", "VN", "DE", "US", "FR", "BR"] {
            t.insert(c);
        }
        assert_eq!(t.joined(), "RU,SG,VN,DE,US,FR+");
    }
}
