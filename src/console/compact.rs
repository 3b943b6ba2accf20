//! Retained events in compact form: the console's ring keeps up to millions of events, so each
//! one is fixed-size (~130 bytes) with its strings interned once per ring (identities, apps,
//! hosts, paths, user agents, reasons repeat across events); the whole `AccessEvent` is rebuilt
//! only for the one being shown, copied or exported (`EventRef::to_event`).
//!
//! `EventFields` is what the console reads of an event, from a live `AccessEvent` or a retained
//! `EventRef` alike, so the filter, the identities table and the details window have one
//! implementation each.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::audit::{AccessEvent, ConnectionMethod, EventKind};

/// An interned string; `NONE` is an absent value.
type Sym = u32;
const NONE: Sym = 0;

/// Strings of one ring, each held once.
#[derive(Debug, Clone)]
pub struct Interner {
    strings: Vec<Arc<str>>,
    index: HashMap<Arc<str>, Sym, foldhash::fast::RandomState>,
}

impl Default for Interner {
    fn default() -> Self {
        Self {
            // Slot 0 is `NONE`, never looked up by value.
            strings: vec![Arc::from("")],
            index: HashMap::default(),
        }
    }
}

impl Interner {
    fn intern(&mut self, s: &str) -> Sym {
        if let Some(&sym) = self.index.get(s) {
            return sym;
        }
        let sym = Sym::try_from(self.strings.len()).unwrap_or(NONE);
        if sym == NONE {
            // 4 billion distinct strings cannot be held in memory anyway.
            return NONE;
        }
        let s: Arc<str> = Arc::from(s);
        self.strings.push(s.clone());
        self.index.insert(s, sym);
        sym
    }

    fn opt(&mut self, s: Option<&str>) -> Sym {
        s.map_or(NONE, |s| self.intern(s))
    }

    fn get(&self, sym: Sym) -> Option<&str> {
        if sym == NONE {
            return None;
        }
        self.strings.get(sym as usize).map(|s| &**s)
    }

    /// Distinct strings held.
    pub fn len(&self) -> usize {
        self.strings.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The interned string fields of an event, indexes into `CompactEvent::syms`.
#[derive(Clone, Copy)]
enum S {
    AppName,
    Decision,
    PolicyName,
    DenyReason,
    ServiceTokenId,
    ServiceTokenName,
    CertCommonName,
    CertSerial,
    CertFingerprint,
    CertIssuer,
    /// The SAN list as a JSON array.
    CertSan,
    SpiffeId,
    OidcIdentity,
    /// The claims as a JSON object.
    OidcClaims,
    Ip,
    Country,
    UserAgent,
    Method,
    Host,
    Path,
    Node,
    /// The ray id when it is not 16 lowercase hex digits (those are kept as a number).
    RayId,
}
const SYMS: usize = S::RayId as usize + 1;

/// One retained event: numbers inline, strings interned in the ring's `Interner`.
#[derive(Debug, Clone)]
pub struct CompactEvent {
    /// Unix microseconds (the log keeps milliseconds; in-process events have more).
    created_us: i64,
    ray: u64,
    secret_version: Option<u32>,
    /// NaN: no latency.
    latency_ms: f32,
    /// 0: no status.
    status: u16,
    kind: EventKind,
    method: ConnectionMethod,
    allowed: bool,
    syms: [Sym; SYMS],
    /// Admin and alert events' details (access events have none, but for a shadow rate limit).
    details: Option<Box<serde_json::Value>>,
    /// The client certificate the gate parsed (in-process events only; never in the log).
    peer_cert: Option<Arc<crate::pki::CertInfo>>,
}

/// The ray id as a number when it is the gate's form (16 lowercase hex digits).
fn hex_ray(s: &str) -> Option<u64> {
    (s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

impl CompactEvent {
    pub fn new(e: &AccessEvent, strings: &mut Interner) -> Self {
        let mut syms = [NONE; SYMS];
        let mut set = |f: S, v: Option<&str>| syms[f as usize] = strings.opt(v);
        set(S::AppName, e.app_name.as_deref());
        set(S::Decision, Some(&e.decision));
        set(S::PolicyName, e.policy_name.as_deref());
        set(S::DenyReason, e.deny_reason.as_deref());
        set(S::ServiceTokenId, e.service_token_id.as_deref());
        set(S::ServiceTokenName, e.service_token_name.as_deref());
        set(S::CertCommonName, e.cert_common_name.as_deref());
        set(S::CertSerial, e.cert_serial.as_deref());
        set(S::CertFingerprint, e.cert_fingerprint_sha256.as_deref());
        set(S::CertIssuer, e.cert_issuer.as_deref());
        let san = e
            .cert_san
            .as_ref()
            .map(|v| serde_json::to_string(v).unwrap_or_default());
        set(S::CertSan, san.as_deref());
        set(S::SpiffeId, e.spiffe_id.as_deref());
        set(S::OidcIdentity, e.oidc_identity.as_deref());
        let claims = e
            .oidc_claims
            .as_ref()
            .map(|c| serde_json::to_string(&**c).unwrap_or_default());
        set(S::OidcClaims, claims.as_deref());
        set(S::Ip, e.ip_address.as_deref());
        set(S::Country, e.country.as_deref());
        set(S::UserAgent, e.user_agent.as_deref());
        set(S::Method, e.method.as_deref());
        set(S::Host, e.host.as_deref());
        set(S::Path, e.path.as_deref());
        set(S::Node, e.node.as_deref());
        let ray = hex_ray(&e.ray_id);
        if ray.is_none() {
            set(S::RayId, Some(&e.ray_id));
        }
        Self {
            created_us: e.created_at.timestamp_micros(),
            ray: ray.unwrap_or(0),
            secret_version: e.secret_version,
            latency_ms: e.latency_ms.map_or(f32::NAN, |l| l as f32),
            status: e.status.unwrap_or(0),
            kind: e.event,
            method: e.connection_method,
            allowed: e.allowed,
            syms,
            details: e.details.clone().map(Box::new),
            peer_cert: e.peer_cert.clone(),
        }
    }

    /// The same event with its strings in `to` instead of `from` (a ring dropping strings no
    /// retained event uses).
    fn reintern(&mut self, from: &Interner, to: &mut Interner) {
        for s in &mut self.syms {
            *s = to.opt(from.get(*s));
        }
    }
}

/// A retained event with the strings it refers to.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    e: &'a CompactEvent,
    strings: &'a Interner,
}

impl<'a> EventRef<'a> {
    pub fn new(e: &'a CompactEvent, strings: &'a Interner) -> Self {
        Self { e, strings }
    }

    fn s(&self, f: S) -> Option<&'a str> {
        self.strings.get(self.e.syms[f as usize])
    }

    fn owned(&self, f: S) -> Option<String> {
        self.s(f).map(str::to_string)
    }

    pub fn details(&self) -> Option<&'a serde_json::Value> {
        self.e.details.as_deref()
    }

    /// The whole event as the gate wrote it (for one shown, copied or exported event).
    pub fn to_event(&self) -> AccessEvent {
        let mut e = AccessEvent::empty(self.e.kind, self.created_at(), self.ray_id().into());
        e.app_name = self.owned(S::AppName);
        e.allowed = self.e.allowed;
        e.decision = self.owned(S::Decision).unwrap_or_default();
        e.status = self.status();
        e.policy_name = self.owned(S::PolicyName);
        e.deny_reason = self.owned(S::DenyReason);
        e.connection_method = self.e.method;
        e.service_token_id = self.owned(S::ServiceTokenId);
        e.service_token_name = self.owned(S::ServiceTokenName);
        e.secret_version = self.e.secret_version;
        e.cert_common_name = self.owned(S::CertCommonName);
        e.cert_serial = self.owned(S::CertSerial);
        e.cert_fingerprint_sha256 = self.owned(S::CertFingerprint);
        e.cert_issuer = self.owned(S::CertIssuer);
        e.cert_san = self
            .s(S::CertSan)
            .and_then(|j| serde_json::from_str(j).ok());
        e.spiffe_id = self.owned(S::SpiffeId);
        e.oidc_identity = self.owned(S::OidcIdentity);
        e.oidc_claims = self
            .s(S::OidcClaims)
            .and_then(|j| serde_json::from_str(j).ok())
            .map(Arc::new);
        e.ip_address = self.owned(S::Ip);
        e.country = self.owned(S::Country);
        e.user_agent = self.owned(S::UserAgent);
        e.method = self.owned(S::Method);
        e.host = self.owned(S::Host);
        e.path = self.owned(S::Path);
        e.latency_ms = self.latency_ms();
        e.node = self.s(S::Node).map(Arc::from);
        e.details = self.e.details.as_deref().cloned();
        e.peer_cert = self.e.peer_cert.clone();
        e
    }
}

/// Refused 429 `rate_limited`, or forwarded in shadow mode by a policy that would have refused
/// it (`details.rate_limited_shadow`).
fn rate_limited(deny_reason: Option<&str>, details: Option<&serde_json::Value>) -> bool {
    deny_reason == Some("rate_limited") || details.is_some_and(|d| d["rate_limited_shadow"] == true)
}

/// What the console reads of an event, live or retained.
pub trait EventFields<'a>: Copy {
    fn kind(&self) -> EventKind;
    fn ray_id(&self) -> Cow<'a, str>;
    fn created_at(&self) -> DateTime<Utc>;
    fn allowed(&self) -> bool;
    fn decision(&self) -> &'a str;
    fn status(&self) -> Option<u16>;
    fn connection_method(&self) -> ConnectionMethod;
    fn app_name(&self) -> Option<&'a str>;
    fn deny_reason(&self) -> Option<&'a str>;
    fn service_token_name(&self) -> Option<&'a str>;
    fn oidc_identity(&self) -> Option<&'a str>;
    fn cert_common_name(&self) -> Option<&'a str>;
    fn ip_address(&self) -> Option<&'a str>;
    fn country(&self) -> Option<&'a str>;
    fn user_agent(&self) -> Option<&'a str>;
    fn method(&self) -> Option<&'a str>;
    fn host(&self) -> Option<&'a str>;
    fn path(&self) -> Option<&'a str>;
    fn node(&self) -> Option<&'a str>;
    fn latency_ms(&self) -> Option<f64>;
    /// Refused 429 `rate_limited`, or forwarded by a policy in shadow mode that would have
    /// refused it (`details.rate_limited_shadow`).
    fn is_rate_limited(&self) -> bool;

    /// Token name, else OIDC workload, else certificate CN (as `AccessEvent::identity`).
    fn identity(&self) -> Option<&'a str> {
        self.service_token_name()
            .or(self.oidc_identity())
            .or(self.cert_common_name())
    }
}

impl<'a> EventFields<'a> for &'a AccessEvent {
    fn kind(&self) -> EventKind {
        self.event
    }
    fn ray_id(&self) -> Cow<'a, str> {
        Cow::Borrowed(&self.ray_id)
    }
    fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    fn allowed(&self) -> bool {
        self.allowed
    }
    fn decision(&self) -> &'a str {
        &self.decision
    }
    fn status(&self) -> Option<u16> {
        self.status
    }
    fn connection_method(&self) -> ConnectionMethod {
        self.connection_method
    }
    fn app_name(&self) -> Option<&'a str> {
        self.app_name.as_deref()
    }
    fn deny_reason(&self) -> Option<&'a str> {
        self.deny_reason.as_deref()
    }
    fn service_token_name(&self) -> Option<&'a str> {
        self.service_token_name.as_deref()
    }
    fn oidc_identity(&self) -> Option<&'a str> {
        self.oidc_identity.as_deref()
    }
    fn cert_common_name(&self) -> Option<&'a str> {
        self.cert_common_name.as_deref()
    }
    fn ip_address(&self) -> Option<&'a str> {
        self.ip_address.as_deref()
    }
    fn country(&self) -> Option<&'a str> {
        self.country.as_deref()
    }
    fn user_agent(&self) -> Option<&'a str> {
        self.user_agent.as_deref()
    }
    fn method(&self) -> Option<&'a str> {
        self.method.as_deref()
    }
    fn host(&self) -> Option<&'a str> {
        self.host.as_deref()
    }
    fn path(&self) -> Option<&'a str> {
        self.path.as_deref()
    }
    fn node(&self) -> Option<&'a str> {
        self.node.as_deref()
    }
    fn latency_ms(&self) -> Option<f64> {
        self.latency_ms
    }
    fn is_rate_limited(&self) -> bool {
        rate_limited(self.deny_reason(), self.details.as_ref())
    }
}

impl<'a> EventFields<'a> for EventRef<'a> {
    fn kind(&self) -> EventKind {
        self.e.kind
    }
    fn ray_id(&self) -> Cow<'a, str> {
        self.s(S::RayId)
            .map_or_else(|| Cow::Owned(format!("{:016x}", self.e.ray)), Cow::Borrowed)
    }
    fn created_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.e.created_us).unwrap_or_default()
    }
    fn allowed(&self) -> bool {
        self.e.allowed
    }
    fn decision(&self) -> &'a str {
        self.s(S::Decision).unwrap_or("")
    }
    fn status(&self) -> Option<u16> {
        (self.e.status != 0).then_some(self.e.status)
    }
    fn connection_method(&self) -> ConnectionMethod {
        self.e.method
    }
    fn app_name(&self) -> Option<&'a str> {
        self.s(S::AppName)
    }
    fn deny_reason(&self) -> Option<&'a str> {
        self.s(S::DenyReason)
    }
    fn service_token_name(&self) -> Option<&'a str> {
        self.s(S::ServiceTokenName)
    }
    fn oidc_identity(&self) -> Option<&'a str> {
        self.s(S::OidcIdentity)
    }
    fn cert_common_name(&self) -> Option<&'a str> {
        self.s(S::CertCommonName)
    }
    fn ip_address(&self) -> Option<&'a str> {
        self.s(S::Ip)
    }
    fn country(&self) -> Option<&'a str> {
        self.s(S::Country)
    }
    fn user_agent(&self) -> Option<&'a str> {
        self.s(S::UserAgent)
    }
    fn method(&self) -> Option<&'a str> {
        self.s(S::Method)
    }
    fn host(&self) -> Option<&'a str> {
        self.s(S::Host)
    }
    fn path(&self) -> Option<&'a str> {
        self.s(S::Path)
    }
    fn node(&self) -> Option<&'a str> {
        self.s(S::Node)
    }
    fn latency_ms(&self) -> Option<f64> {
        (!self.e.latency_ms.is_nan()).then_some(f64::from(self.e.latency_ms))
    }
    fn is_rate_limited(&self) -> bool {
        rate_limited(self.deny_reason(), self.details())
    }
}

/// Events per chunk: a frozen view shares every full chunk with the live ring, so freezing
/// copies at most one chunk.
const CHUNK: usize = 4096;

/// The most recent events, compact; each has a sequence number that survives eviction of
/// older ones. Held in shared chunks, so cloning the ring (a frozen view) copies no events.
#[derive(Debug, Clone)]
pub struct EventRing {
    chunks: std::collections::VecDeque<Arc<Vec<CompactEvent>>>,
    /// Events of the first chunk already evicted.
    head: usize,
    len: usize,
    cap: usize,
    chunk: usize,
    next_seq: u64,
    strings: Arc<Interner>,
    /// Distinct strings at which the interner is rebuilt from the retained events (so strings
    /// only evicted events used, like unique paths, do not accumulate).
    rebuild_at: usize,
}

/// Interned strings below which the interner is never rebuilt.
const MIN_REBUILD: usize = 1 << 16;

impl EventRing {
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Self {
            chunks: Default::default(),
            head: 0,
            len: 0,
            cap,
            chunk: cap.min(CHUNK),
            next_seq: 0,
            strings: Arc::default(),
            rebuild_at: MIN_REBUILD,
        }
    }

    /// Add an event (dropping the oldest when full); returns its sequence number.
    pub fn push(&mut self, ev: &AccessEvent) -> u64 {
        if self.strings.len() >= self.rebuild_at {
            self.rebuild_strings();
        }
        let compact = CompactEvent::new(ev, Arc::make_mut(&mut self.strings));
        if self.len == self.cap {
            self.head += 1;
            self.len -= 1;
            if self.head == self.chunk {
                self.chunks.pop_front();
                self.head = 0;
            }
        }
        if self.chunks.back().is_none_or(|c| c.len() == self.chunk) {
            self.chunks
                .push_back(Arc::new(Vec::with_capacity(self.chunk)));
        }
        if let Some(last) = self.chunks.back_mut() {
            Arc::make_mut(last).push(compact);
        }
        self.len += 1;
        self.next_seq += 1;
        self.next_seq - 1
    }

    /// Re-intern the retained events' strings into a fresh interner, dropping the rest.
    fn rebuild_strings(&mut self) {
        let mut fresh = Interner::default();
        for chunk in &mut self.chunks {
            for e in Arc::make_mut(chunk) {
                e.reintern(&self.strings, &mut fresh);
            }
        }
        self.rebuild_at = (fresh.len() * 2).max(MIN_REBUILD);
        self.strings = Arc::new(fresh);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Distinct strings the retained events use (at most; some may belong to evicted ones).
    pub fn strings(&self) -> usize {
        self.strings.len()
    }

    /// Sequence number of the oldest event still held.
    pub fn first_seq(&self) -> u64 {
        self.next_seq - self.len as u64
    }

    /// The `i`-th oldest event held.
    fn at(&self, i: usize) -> Option<EventRef<'_>> {
        if i >= self.len {
            return None;
        }
        let pos = self.head + i;
        let e = self.chunks.get(pos / self.chunk)?.get(pos % self.chunk)?;
        Some(EventRef::new(e, &self.strings))
    }

    /// The event with sequence number `seq`, if still held.
    pub fn get(&self, seq: u64) -> Option<EventRef<'_>> {
        let i = seq.checked_sub(self.first_seq())?;
        self.at(usize::try_from(i).ok()?)
    }

    /// The `i`-th newest event (0 = newest).
    pub fn newest(&self, i: usize) -> Option<EventRef<'_>> {
        self.len.checked_sub(i + 1).and_then(|j| self.at(j))
    }

    /// Position of the first event created at or after unix second `sec`.
    fn partition(&self, sec: i64) -> usize {
        let us = sec.saturating_mul(1_000_000);
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.at(mid).is_some_and(|e| e.e.created_us < us) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Sequence numbers `lo..hi` of the events created in the unix seconds `start..end` (`end`
    /// None: no upper bound). Found by binary search: events are held in arrival order, which
    /// is time order for one gate; events merged from several gates can be out of order by
    /// their delivery delay, and such a straggler is counted with its neighbours.
    pub fn seq_range(&self, start: i64, end: Option<i64>) -> std::ops::Range<u64> {
        let first = self.first_seq();
        let lo = self.partition(start);
        let hi = end.map_or(self.len, |end| self.partition(end));
        first + lo as u64..first + hi.max(lo) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::bench::synthetic_event;
    use chrono::TimeZone;

    fn rich_event() -> AccessEvent {
        let mut e = synthetic_event(7, Utc.timestamp_opt(1_700_000_000, 0).unwrap(), 10);
        e.ray_id = "not-hex-ray".into();
        e.cert_san = Some(vec!["DNS:a.example".into(), "URI:spiffe://x/y".into()]);
        e.spiffe_id = Some("spiffe://x/y".into());
        e.oidc_identity = Some("oidc:https://issuer/sub".into());
        let mut claims = serde_json::Map::new();
        claims.insert("repository".into(), "acme/app".into());
        e.oidc_claims = Some(Arc::new(claims));
        e.secret_version = Some(2);
        e.node = Some(Arc::from("gate-a"));
        e.details = Some(serde_json::json!({"rate_limited_shadow": true}));
        e.user_agent = Some("curl/8.5".into());
        e.latency_ms = Some(2.5);
        e
    }

    #[test]
    fn to_event_gives_back_the_event_exactly() {
        let mut strings = Interner::default();
        for e in [
            rich_event(),
            synthetic_event(1, Utc::now(), 5),
            AccessEvent::admin(Utc::now(), "token.create", "t", serde_json::json!({"a": 1})),
        ] {
            let c = CompactEvent::new(&e, &mut strings);
            let back = EventRef::new(&c, &strings).to_event();
            // Microseconds are kept (the log has milliseconds).
            let mut want = e.clone();
            want.created_at =
                DateTime::from_timestamp_micros(e.created_at.timestamp_micros()).unwrap();
            assert_eq!(back, want);
            assert_eq!(back.to_json_line(), want.to_json_line());
        }
    }

    #[test]
    fn fields_read_the_same_from_both_forms() {
        let mut strings = Interner::default();
        let e = rich_event();
        let c = CompactEvent::new(&e, &mut strings);
        let r = EventRef::new(&c, &strings);
        assert_eq!(r.identity(), e.identity());
        assert_eq!(r.country(), (&e).country());
        assert_eq!(r.path(), (&e).path());
        assert_eq!(r.node(), Some("gate-a"));
        assert_eq!(r.latency_ms(), Some(2.5));
        assert!(r.is_rate_limited() && (&e).is_rate_limited());
        assert_eq!(r.ray_id(), "not-hex-ray");
    }

    #[test]
    fn strings_are_held_once_and_evicted_ones_dropped() {
        let mut ring = EventRing::new(10);
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let mut e = AccessEvent::empty(EventKind::Access, at, "0000000000000001".into());
        e.user_agent = Some("same-agent".into());
        for _ in 0..100 {
            ring.push(&e);
        }
        // The agent and the decision.
        assert_eq!(ring.strings(), 2);
        for i in 0..(MIN_REBUILD as u64 + 10) {
            e.path = Some(format!("/unique/{i}"));
            ring.push(&e);
        }
        // Rebuilt once: only what the last events use (plus what came after) remains.
        assert!(ring.strings() < 100, "{} strings", ring.strings());
        assert_eq!(
            ring.newest(0).and_then(|r| r.path().map(str::to_string)),
            Some(format!("/unique/{}", MIN_REBUILD + 9))
        );
    }

    #[test]
    fn sequence_numbers_survive_eviction_across_chunks() {
        let mut ring = EventRing::new(CHUNK + 10);
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        for i in 0..(3 * CHUNK as u64) {
            let e = AccessEvent::empty(
                EventKind::Access,
                at + chrono::Duration::seconds(i as i64),
                format!("{i:016x}"),
            );
            assert_eq!(ring.push(&e), i);
        }
        assert_eq!(ring.len(), CHUNK + 10);
        let first = ring.first_seq();
        assert_eq!(first, 3 * CHUNK as u64 - (CHUNK as u64 + 10));
        assert!(ring.get(first - 1).is_none());
        assert_eq!(ring.get(first).unwrap().ray_id(), format!("{first:016x}"));
        assert_eq!(
            ring.newest(0).unwrap().ray_id(),
            format!("{:016x}", 3 * CHUNK - 1)
        );
        let start = 1_700_000_000 + first as i64 + 5;
        let r = ring.seq_range(start, Some(start + 3));
        assert_eq!(r, first + 5..first + 8);
    }

    #[test]
    fn a_clone_shares_full_chunks_and_does_not_see_later_events() {
        let mut ring = EventRing::new(3 * CHUNK);
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let e = AccessEvent::empty(EventKind::Access, at, "0000000000000001".into());
        for _ in 0..(CHUNK + 1) {
            ring.push(&e);
        }
        let frozen = ring.clone();
        assert!(Arc::ptr_eq(&ring.chunks[0], &frozen.chunks[0]));
        ring.push(&e);
        assert_eq!(frozen.len(), CHUNK + 1);
        assert_eq!(ring.len(), CHUNK + 2);
        assert!(Arc::ptr_eq(&ring.chunks[0], &frozen.chunks[0]));
    }

    #[test]
    fn compact_event_stays_small() {
        assert!(
            std::mem::size_of::<CompactEvent>() <= 144,
            "{}",
            std::mem::size_of::<CompactEvent>()
        );
    }
}
