//! Bounded memory for the rules: a map that evicts its stalest keys when full, and a sliding
//! window counter with a fixed number of slots (so a flood costs no more memory than a trickle).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

use chrono::{DateTime, Duration, Utc};

/// A map with at most `cap` keys; inserting into a full map first evicts the stalest tenth.
#[derive(Debug, Clone)]
pub(crate) struct BoundedMap<K, V> {
    cap: usize,
    entries: HashMap<K, (V, DateTime<Utc>)>,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            entries: HashMap::new(),
        }
    }

    /// The value for `key` (created with `make` if absent), marked as touched at `now`.
    /// Looks up with the borrowed key; an owned copy is made only when the key is new.
    pub(crate) fn touch<Q>(
        &mut self,
        key: &Q,
        now: DateTime<Utc>,
        make: impl FnOnce() -> V,
    ) -> &mut V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if !self.entries.contains_key(key) {
            if self.entries.len() >= self.cap {
                self.evict_stalest();
            }
            let slot = self
                .entries
                .entry(key.to_owned())
                .or_insert_with(|| (make(), now));
            return &mut slot.0;
        }
        let slot = self
            .entries
            .get_mut(key)
            // Cannot fail: the key was found just above and nothing was removed since.
            .expect("key present");
        slot.1 = slot.1.max(now);
        &mut slot.0
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(v, _)| v)
    }

    /// When `key` was last touched.
    pub(crate) fn touched_at(&self, key: &K) -> Option<DateTime<Utc>> {
        self.entries.get(key).map(|(_, t)| *t)
    }

    /// Forget keys not touched since `cutoff`.
    pub(crate) fn forget_before(&mut self, cutoff: DateTime<Utc>) {
        self.entries.retain(|_, (_, t)| *t >= cutoff);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.keys()
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.values_mut().map(|(v, _)| v)
    }

    fn evict_stalest(&mut self) {
        let n = (self.cap / 10).max(1).min(self.entries.len());
        let mut times: Vec<DateTime<Utc>> = self.entries.values().map(|(_, t)| *t).collect();
        let (_, cutoff, _) = times.select_nth_unstable(n - 1);
        let cutoff = *cutoff;
        let mut left = n;
        self.entries.retain(|_, (_, t)| {
            if left > 0 && *t <= cutoff {
                left -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// Counts over a sliding window, kept in `slots` equal slots (the window's resolution).
#[derive(Debug, Clone)]
pub(crate) struct WindowCounter {
    slot_ms: i64,
    counts: Vec<u64>,
    /// Absolute index (time / slot_ms) of the newest slot; `None` before the first count.
    head: Option<i64>,
    /// Absolute index of the first slot ever counted.
    first: i64,
}

impl WindowCounter {
    pub(crate) fn new(window: Duration, slots: usize) -> Self {
        let slots = slots.max(1);
        let slot_ms = (window.num_milliseconds() / slots as i64).max(1);
        Self {
            slot_ms,
            counts: vec![0; slots],
            head: None,
            first: 0,
        }
    }

    /// The absolute slot index of `at`.
    pub(crate) fn slot_of(&self, at: DateTime<Utc>) -> i64 {
        at.timestamp_millis().div_euclid(self.slot_ms)
    }

    /// Add `n` at `at`, first moving the window so that `at` is inside it. Each slot that falls
    /// out of the window is passed to `evicted(count, times)`: `times > 1` means that many
    /// consecutive slots with that same count (used for runs of empty slots).
    pub(crate) fn add_with(&mut self, at: DateTime<Utc>, n: u64, evicted: impl FnMut(u64, u64)) {
        let idx = self.slot_of(at);
        self.advance(idx, evicted);
        let len = self.counts.len() as i64;
        let head = self.head.unwrap_or(idx);
        // An event older than the window (clock skew between producers) is dropped.
        if head - idx < len {
            let i = idx.rem_euclid(len) as usize;
            self.counts[i] = self.counts[i].saturating_add(n);
        }
    }

    /// Add `n` at `at`.
    pub(crate) fn add(&mut self, at: DateTime<Utc>, n: u64) {
        self.add_with(at, n, |_, _| {});
    }

    /// Move the newest slot to `idx`, reporting evicted slots (never slots from before the
    /// first count: a new key has no history, not a history of zeros).
    pub(crate) fn advance(&mut self, idx: i64, mut evicted: impl FnMut(u64, u64)) {
        let len = self.counts.len() as i64;
        let Some(head) = self.head else {
            self.head = Some(idx);
            self.first = idx;
            return;
        };
        if idx <= head {
            return;
        }
        // Absolute slots first..=last leave the window; those up to `head` are in the ring.
        let (first, last) = (head - len + 1, idx - len);
        for a in first..=last.min(head) {
            let i = a.rem_euclid(len) as usize;
            if a >= self.first {
                evicted(self.counts[i], 1);
            }
            self.counts[i] = 0;
        }
        if last > head {
            evicted(0, (last - head) as u64);
        }
        self.head = Some(idx);
    }

    /// Total over the window ending at `now` (slots newer than `now` are not counted).
    pub(crate) fn total(&self, now: DateTime<Utc>) -> u64 {
        let Some(head) = self.head else { return 0 };
        let len = self.counts.len() as i64;
        let now_idx = self.slot_of(now);
        let from = (head - len + 1).max(now_idx - len + 1);
        let to = head.min(now_idx);
        (from..=to)
            .map(|a| self.counts[a.rem_euclid(len) as usize])
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn bounded_map_evicts_the_stalest() {
        let mut m: BoundedMap<u32, u32> = BoundedMap::new(10);
        for k in 0..10 {
            m.touch(&k, t(k as i64), || k);
        }
        m.touch(&0, t(100), || 0); // key 0 is now the freshest
        m.touch(&99, t(101), || 99);
        assert_eq!(m.len(), 10);
        assert!(m.get(&0).is_some());
        assert!(m.get(&1).is_none(), "the stalest key goes first");
        m.forget_before(t(100));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn window_counts_only_the_window() {
        let mut w = WindowCounter::new(Duration::seconds(60), 6);
        w.add(t(0), 5);
        w.add(t(30), 3);
        assert_eq!(w.total(t(30)), 8);
        assert_eq!(w.total(t(65)), 3, "the first slot has left the window");
        assert_eq!(w.total(t(200)), 0);
        w.add(t(200), 1);
        assert_eq!(w.total(t(200)), 1);
    }

    #[test]
    fn eviction_reports_real_slots_then_empty_runs() {
        let mut w = WindowCounter::new(Duration::seconds(3), 3);
        w.add(t(0), 2);
        let mut seen = Vec::new();
        w.add_with(t(1), 4, |c, n| seen.push((c, n)));
        assert!(
            seen.is_empty(),
            "no history before the first count is invented"
        );
        w.add_with(t(10), 1, |c, n| seen.push((c, n)));
        // Slots 0..=7 leave the window [8, 10]: the two real ones, then a run of 6 empties.
        assert_eq!(seen, vec![(2, 1), (4, 1), (0, 6)]);
        assert_eq!(w.total(t(10)), 1);
    }
}
